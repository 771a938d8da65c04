import ArgumentParser
import FivedCore
import FivedServer
import Foundation
import Logging

/// `fived`: the Layer Five Daemon. Parses flags, builds the configuration,
/// starts the daemon. Everything else lives in FivedCore and FivedServer.
@main
struct Fived: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fived",
        abstract: "The Layer Five Daemon: named services behind one SSH port.",
        discussion: "Flags add to the config file; where both set one value, the flag wins. See docs/configuration.md.",
        version: "fived \(FivedVersion.current)"
    )

    @Option(name: .long, help: ArgumentHelp("TOML configuration file.", valueName: "FILE"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Address to listen on (repeatable), e.g. 127.0.0.1:2222 or [::1]:2222.", valueName: "HOST:PORT"))
    var listen: [String] = []

    @Option(name: .customLong("host-key"), help: ArgumentHelp("Host private key (repeatable); an Ed25519 key is generated if missing.", valueName: "FILE"))
    var hostKey: [String] = []

    @Option(name: .customLong("authorized-keys"), help: ArgumentHelp("OpenSSH authorized_keys file (repeatable); %u and %h expand.", valueName: "FILE"))
    var authorizedKeys: [String] = []

    @Option(name: .long, help: ArgumentHelp("A service (repeatable): tcp:HOST:PORT, unix:/PATH or exec:/PATH/PROG ARG...", valueName: "NAME=BACKEND"))
    var service: [String] = []

    @Option(name: .long, help: ArgumentHelp("A plain RFC 1078 TCPMUX listener (repeatable).", valueName: "HOST:PORT"))
    var tcpmux: [String] = []

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, warning or error.", valueName: "LEVEL"))
    var logLevel: String?

    @Flag(name: [.customShort("t"), .long], help: "Load and validate everything, print the service table, exit 0 or 1.")
    var check = false

    var overrides: ConfigurationOverrides {
        var o = ConfigurationOverrides()
        o.configFile = config
        o.listen = listen
        o.hostKeys = hostKey
        o.authorizedKeys = authorizedKeys
        o.services = service
        o.tcpmux = tcpmux
        o.logLevel = logLevel
        return o
    }

    func run() throws {
        let overrides = self.overrides
        let configuration: Configuration
        do {
            configuration = try ConfigurationLoader.load(overrides)
        } catch {
            Self.fail(error.message)
        }
        if check {
            do {
                let notes = try Daemon.check(configuration) + AuthorizedKeysCheck.notes(patterns: configuration.authorizedKeys)
                print(ServiceTable.render(configuration), terminator: "")
                for note in notes { print(note) }
            } catch {
                Self.fail("\(error)")
            }
            return
        }
        let level = Logger.Level(fived: configuration.logLevel)
        let format = configuration.logFormat
        LoggingSystem.bootstrap { label in FivedLogHandler(label: label, level: level, format: format) }
        let logger = Logger(label: "fived")
        let daemon = Daemon(configuration: configuration, reload: { () throws(FivedCoreError) -> Configuration in
            // Read it in a child first: a file that crashes the TOML parser must not take the daemon down.
            try ConfigurationPreflight.check(arguments: Array(CommandLine.arguments.dropFirst()))
            return try ConfigurationLoader.load(overrides)
        }, logger: logger)
        do {
            try daemon.run()
        } catch {
            Self.fail("\(error)")
        }
    }

    /// One line on stderr, exit status 1, nothing started.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("fived: \(message)\n".utf8))
        Foundation.exit(1)
    }

    /// ArgumentParser's own errors (unknown flag, missing value) as one line and exit 1.
    static func main() {
        // A statically linked Swift runtime reads the arguments from /proc/self/cmdline:
        // without /proc (a bare chroot) it sees none, and would start with the defaults.
        guard !CommandLine.arguments.isEmpty else {
            fail("cannot read the command line: /proc/self/cmdline is unreadable (is /proc mounted?)")
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help / --version
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            fail("\(text) (see fived --help)")
        }
    }
}

extension Logger.Level {
    init(fived level: LogLevel) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .warning: self = .warning
        case .error: self = .error
        }
    }
}

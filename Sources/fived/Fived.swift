import ArgumentParser
import FivedCore
import FivedServer
import FivedSystem
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

    /// The daemon starts its privileged half as `fived --internal-spawner ARGS`
    /// with the socketpair on descriptor 3 (docs/security.md, "Who runs what").
    @Flag(name: .customLong("internal-spawner"), help: .hidden)
    var internalSpawner = false

    /// A reload's first step (ConfigurationPreflight): read the configuration in
    /// a child, where a parser crash cannot take the daemon down, and exit.
    @Flag(name: .customLong("internal-parse-only"), help: .hidden)
    var internalParseOnly = false

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
        if internalParseOnly { return }
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
        if internalSpawner { Self.runSpawner(overrides: overrides, logger: logger) }
        let daemon = Daemon(
            configuration: configuration,
            reload: { () throws(FivedCoreError) -> Configuration in
                // Read it in a child first: a file that crashes the TOML parser must not take the daemon down.
                try ConfigurationPreflight.check(arguments: Array(CommandLine.arguments.dropFirst()))
                return try ConfigurationLoader.load(overrides)
            }, spawnerArguments: Array(CommandLine.arguments.dropFirst()), logger: logger)
        do {
            try daemon.run()
        } catch {
            Self.fail("\(error)")
        }
    }

    /// The spawner's life: serve the daemon on descriptor 3 until it goes away.
    static func runSpawner(overrides: ConfigurationOverrides, logger: Logger) -> Never {
        guard Socket.isSeqPacket(3) else { fail("--internal-spawner is started by fived itself, with its socket as descriptor 3") }
        let arguments = Array(CommandLine.arguments.dropFirst().filter { $0 != "--internal-spawner" })
        do {
            let spawner = try Spawner(
                socket: 3,
                load: { () throws(FivedCoreError) -> Configuration in
                    try ConfigurationPreflight.check(arguments: arguments)
                    return try ConfigurationLoader.load(overrides)
                }, logger: logger)
            Foundation.exit(spawner.run())
        } catch {
            fail("spawner: \(error.message)")
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

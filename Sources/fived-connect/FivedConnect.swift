import ArgumentParser
import FivedClient
import FivedCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `fived-connect`: the client. Parses ssh-style flags, resolves the options
/// from the command line and ~/.ssh/config, and runs one of the forms: stdio
/// to a service, `-L`/`-R` forwards, or `--list`.
@main
struct FivedConnect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fived-connect",
        abstract: "Reach services behind a fived host by name, over SSH.",
        usage: """
            fived-connect [-p PORT] [-l USER] [-i FILE] [-F FILE] [-o KEY=VALUE]... [-v] [-q] [user@]HOST SERVICE
            fived-connect [options] -L [BIND:]PORT:SERVICE | -L /PATH.sock:SERVICE ... [user@]HOST
            fived-connect [options] -R NAME:HOST:PORT | -R NAME:/PATH.sock ... [user@]HOST
            fived-connect [options] --list [user@]HOST
            """,
        discussion: """
            Flags mean what they mean to ssh; ~/.ssh/config (or -F) applies. Exit status: 0 done, \
            1 service refused, 255 connection or authentication failure. See docs/fived-connect.md.
            """,
        version: "fived-connect \(FivedVersion.current)"
    )

    @Option(name: .customShort("p"), help: ArgumentHelp("Port of the fived host (default 1).", valueName: "PORT"))
    var port: String?

    @Option(name: .customShort("l"), help: ArgumentHelp("User name to log in as.", valueName: "USER"))
    var loginName: String?

    @Option(name: .customShort("i"), help: ArgumentHelp("Private key file (repeatable), tried after ssh-agent.", valueName: "FILE"))
    var identityFiles: [String] = []

    @Option(name: .customShort("F"), help: ArgumentHelp("ssh config file instead of ~/.ssh/config ('none' for none).", valueName: "FILE"))
    var configFile: String?

    @Option(name: .customShort("o"), help: ArgumentHelp("An ssh_config option (repeatable), e.g. StrictHostKeyChecking=accept-new.", valueName: "KEY=VALUE"))
    var sshOptions: [String] = []

    @Flag(name: .customShort("v"), help: "More detail on stderr (repeat for libssh's own log).")
    var verbose: Int

    @Flag(name: .customShort("q"), help: "Quiet: only errors on stderr.")
    var quiet = false

    @Option(name: .customShort("L"), help: ArgumentHelp("Forward a local port or socket to SERVICE (repeatable).", valueName: "[BIND:]PORT:SERVICE"))
    var localForwards: [String] = []

    @Option(name: .customShort("R"), help: ArgumentHelp("Publish NAME and connect it to a local target (repeatable).", valueName: "NAME:HOST:PORT"))
    var remoteForwards: [String] = []

    @Flag(name: .customLong("list"), help: "List the services you may open on HOST.")
    var list = false

    @Argument(help: ArgumentHelp("The fived host, as for ssh.", valueName: "[user@]HOST"))
    var destination: String

    @Argument(help: ArgumentHelp("The service to connect stdin and stdout to.", valueName: "SERVICE"))
    var service: String?

    mutating func validate() throws {
        let forwards = !localForwards.isEmpty || !remoteForwards.isEmpty
        if list && (forwards || service != nil) {
            throw ValidationError("--list takes only a host")
        }
        if forwards && service != nil {
            throw ValidationError("-L/-R take only a host, not a service ('\(service!)')")
        }
        if !list && !forwards && service == nil {
            throw ValidationError("missing SERVICE: use fived-connect HOST SERVICE, -L, -R or --list")
        }
        if let service, !ServiceName.isValid(service) {
            throw ValidationError("'\(ServiceName.printable(service))' is not a service name (letters, digits, '.', '_', '-'; 1 to 64)")
        }
        if let port, Self.parsePort(port) == nil {
            throw ValidationError("-p '\(port)': use a port from 1 to 65535")
        }
        do {
            for spec in localForwards { _ = try LocalForward(parsing: spec) }
            for spec in remoteForwards { _ = try RemoteForward(parsing: spec) }
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() throws {
        ClientProcess.prepare(libsshVerbosity: verbose >= 2 ? Int32(min(verbose, 4)) : 0)
        var diagnostics = Diagnostics(verbosity: quiet ? -1 : verbose)

        let environment = Self.environment()
        let options: ClientOptions
        do {
            let config = try loadConfig(home: environment.home)
            if let config { for note in config.notes { diagnostics.debug(note) } }
            options = try ClientOptions.resolve(
                commandLine: ClientCommandLine(
                    destination: destination, port: port.flatMap(Self.parsePort),
                    user: loginName, identityFiles: identityFiles, options: sshOptions),
                config: config, environment: environment)
        } catch {
            diagnostics.error(error.message)
            Self.exit(withStatus: 255)
        }
        for key in options.ignored { diagnostics.warning("-o \(key) means nothing to fived-connect; ignored") }
        diagnostics.verbosity = quiet ? -1 : verbose
        let dialer = Dialer(options: options, home: environment.home, diagnostics: diagnostics)

        if list || service != nil {
            let session = StdioSession(dialer: dialer, service: list ? "help" : service!, readsStdin: !list)
            Self.exit(withStatus: session.run())
        }
        let local = localForwards.compactMap { try? LocalForward(parsing: $0) }
        let remote = remoteForwards.compactMap { try? RemoteForward(parsing: $0) }
        let forwarding = ForwardSession(dialer: dialer, localForwards: local, remoteForwards: remote)
        Self.exit(withStatus: forwarding.run())
    }

    /// ~/.ssh/config, or -F FILE (which must exist), or nothing with -F none.
    private func loadConfig(home: String) throws(FivedCoreError) -> SSHConfigFile? {
        let path: String
        if let configFile {
            if configFile.lowercased() == "none" { return nil }
            path = configFile.hasPrefix("~/") ? home + configFile.dropFirst() : configFile
            guard FileManager.default.fileExists(atPath: path) else {
                throw FivedCoreError(.clientConfigSyntax, "-F \(path): no such file")
            }
        } else {
            path = "\(home)/.ssh/config"
            guard FileManager.default.fileExists(atPath: path) else { return nil }
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw FivedCoreError(.clientConfigSyntax, "\(path): cannot read it")
        }
        return try SSHConfigFile(text: text, path: path)
    }

    /// $HOME (so that a test or a sandbox can point it elsewhere), else the password database.
    static func environment() -> ClientEnvironment {
        var home = ProcessInfo.processInfo.environment["HOME"] ?? ""
        var user = ""
        if let pw = getpwuid(getuid()) {
            user = String(cString: pw.pointee.pw_name)
            if home.isEmpty { home = String(cString: pw.pointee.pw_dir) }
        }
        if user.isEmpty { user = ProcessInfo.processInfo.environment["USER"] ?? "root" }
        return ClientEnvironment(home: home, localUser: user)
    }

    /// A port 1...65535 for `-p`.
    static func parsePort(_ text: String) -> UInt16? {
        guard let value = Int(text), (1...65535).contains(value) else { return nil }
        return UInt16(value)
    }

    static func exit(withStatus status: Int32) -> Never {
        Glibc.exit(status)
    }

    /// ssh accepts `-p2299` and `-oKey=Value`; swift-argument-parser wants the value apart.
    static func splitAttachedValues(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var rest = arguments[...]
        while let arg = rest.popFirst() {
            if arg == "--" { out.append(arg); out += rest; break }
            if arg.count > 2, arg.hasPrefix("-"), !arg.hasPrefix("--"),
                let letter = arg.dropFirst().first, "plioFLR".contains(letter)
            {
                out.append("-\(letter)")
                out.append(String(arg.dropFirst(2)))
            } else {
                out.append(arg)
            }
        }
        return out
    }

    static func main() {
        let arguments = splitAttachedValues(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                exit(withStatus: 0)
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            Diagnostics(verbosity: 0).error("\(message) (see fived-connect --help)")
            exit(withStatus: 255)
        }
    }
}

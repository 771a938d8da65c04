#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Where the built executables are: `FIVED_BIN` (the fived binary itself) overrides;
/// otherwise the directory of the test runner (`swift test` runs
/// `.build/<triple>/debug/fivedPackageTests.xctest`, beside `fived`), then the usual
/// build folders of the package this file is in.
enum Binaries {
    static func fived() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["FIVED_BIN"], !explicit.isEmpty {
            guard access(explicit, X_OK) == 0 else { throw HarnessError("FIVED_BIN=\(explicit) is not an executable") }
            return explicit
        }
        return try locate("fived")
    }

    static func locate(_ name: String) throws -> String {
        var directories: [String] = []
        if let first = CommandLine.arguments.first {
            let runner = URL(fileURLWithPath: first).standardizedFileURL
            directories.append(runner.deletingLastPathComponent().path)
            // A runner inside a bundle (.xctest/Contents/MacOS/...): the bundle's directory.
            var up = runner
            for _ in 0..<4 {
                up = up.deletingLastPathComponent()
                if up.pathExtension == "xctest" { directories.append(up.deletingLastPathComponent().path) }
            }
        }
        directories.append(Bundle.main.bundleURL.deletingLastPathComponent().path)
        directories.append(Bundle.main.bundleURL.path)
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        for scratch in [".build", ".build-itest"] {
            directories.append(packageRoot.appendingPathComponent("\(scratch)/debug").path)
        }
        for directory in directories {
            let candidate = "\(directory)/\(name)"
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                access(candidate, X_OK) == 0
            {
                return candidate
            }
        }
        throw HarnessError(
            "cannot find the built \(name) (looked in \(directories.joined(separator: ", "))): run swift build, or set FIVED_BIN")
    }
}

/// One service in the generated config file.
struct TestService: Sendable {
    enum Backend: Sendable {
        /// `exec = [...]`
        case exec([String])
        /// `connect = "..."` (`HOST:PORT` or `unix:/PATH`)
        case connect(String)
    }

    var name: String
    var backend: Backend
    /// `allow = [...]`, or none.
    var allow: [String]? = nil
    /// Further `key = value` lines for the service table, as TOML.
    var extra: [String] = []

    static func exec(_ name: String, _ argv: String..., allow: [String]? = nil) -> TestService {
        TestService(name: name, backend: .exec(argv), allow: allow)
    }

    static func connect(_ name: String, _ target: String, allow: [String]? = nil) -> TestService {
        TestService(name: name, backend: .connect(target), allow: allow)
    }

    /// The line an exec service needs when the tests run as root (fived refuses
    /// one without a user then), empty otherwise.
    static var rootUser: String { TestDirectory.asRoot ? #"user = "root""# : "" }

    /// The `[services.NAME]` table.
    var toml: String {
        var lines = ["[services.\(tomlString(name))]"]
        switch backend {
        case .exec(let argv): lines.append("exec = \(tomlArray(argv))")
        case .connect(let target): lines.append("connect = \(tomlString(target))")
        }
        if let allow { lines.append("allow = \(tomlArray(allow))") }
        // fived started as root refuses an exec service without a user (fail
        // closed): the tests that do not name one run theirs as root, explicitly.
        if case .exec = backend, TestDirectory.asRoot, !extra.contains(where: { $0.hasPrefix("user") }) {
            lines.append("user = \"root\"")
        }
        lines += extra
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A TOML basic string.
func tomlString(_ text: String) -> String {
    var escaped = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": escaped += "\\\""
        case "\\": escaped += "\\\\"
        case "\n": escaped += "\\n"
        case "\t": escaped += "\\t"
        default: escaped.unicodeScalars.append(scalar)
        }
    }
    return "\"\(escaped)\""
}

/// A TOML array of strings.
func tomlArray(_ items: [String]) -> String {
    "[" + items.map(tomlString).joined(separator: ", ") + "]"
}

/// How a test wants fived started.
struct FivedOptions: Sendable {
    var services: [TestService] = [.exec("echo", "/bin/cat")]
    /// TOML appended after the top-level keys and before the services (e.g. a `[limits]` table).
    var extraTOML: String = ""
    /// Flags after the generated ones.
    var arguments: [String] = []
    /// authorized_keys paths (may hold `%u`, `%h`); default: the environment's file.
    var authorizedKeys: [String]? = nil
    /// The host key path; default: `host_ed25519_key` in the test directory (generated by fived).
    var hostKey: String? = nil
    /// Extra environment for fived itself.
    var environment: [String: String] = [:]
    /// `log_level`; FIVED_IT_LOG_LEVEL (e.g. debug) overrides it for every test.
    var logLevel = ProcessInfo.processInfo.environment["FIVED_IT_LOG_LEVEL"] ?? "info"
    /// A plain TCPMUX listener on 127.0.0.1, on a port the kernel picks (`--tcpmux 127.0.0.1:0`).
    var tcpmux = false
    /// false: no config file; everything as flags (`--listen`, `--service NAME=BACKEND`, ...).
    var useConfigFile = true
    /// Names the config file (`NAME.toml`) and the output files, so several daemons share a test directory.
    var name = "fived"
    /// A program fived is started through (it execs fived, with fived's path and
    /// arguments after these), e.g. a socket-activation launcher.
    var launcher: [String] = []

    init(services: [TestService] = [.exec("echo", "/bin/cat")], extraTOML: String = "", arguments: [String] = []) {
        self.services = services
        self.extraTOML = extraTOML
        self.arguments = arguments
    }
}

/// A test's world: its directory (also HOME for every child), the SSH user name, a
/// default Ed25519 client key, and the authorized_keys file fived reads.
final class TestEnvironment: Sendable {
    let directory: TestDirectory
    /// The client key authorized by default.
    let key: ClientKey
    /// The SSH user name the tests log in as.
    let user = "tester"

    var authorizedKeysPath: String { directory.file("authorized_keys") }
    var knownHostsPath: String { directory.file("known_hosts") }

    private init(directory: TestDirectory, key: ClientKey) {
        self.directory = directory
        self.key = key
    }

    /// A new directory with a fresh Ed25519 key, authorized.
    static func make() async throws -> TestEnvironment {
        let directory = try TestDirectory()
        let key = try await ClientKey.generate(.ed25519, name: "id_ed25519", in: directory)
        let environment = TestEnvironment(directory: directory, key: key)
        try environment.setAuthorizedKeys([key.authorizedLine()])
        return environment
    }

    /// Replaces an authorized_keys file in the test directory (atomically, as an editor
    /// that renames does) with `lines`.
    func setAuthorizedKeys(_ lines: [String], file: String = "authorized_keys") throws {
        try directory.write(file, lines.joined(separator: "\n") + "\n", mode: 0o600)
    }

    /// A new key of `type` in this directory (not authorized).
    func newKey(_ type: ClientKey.KeyType, name: String, comment: String? = nil) async throws -> ClientKey {
        try await ClientKey.generate(type, name: name, comment: comment, in: directory)
    }

    /// The config file text for `options`.
    func configText(_ options: FivedOptions) -> String {
        let hostKey = options.hostKey ?? directory.file("host_ed25519_key")
        var text = """
            # generated by the integration tests
            listen = ["127.0.0.1:0"]
            host_keys = \(tomlArray([hostKey]))
            authorized_keys = \(tomlArray(options.authorizedKeys ?? [authorizedKeysPath]))
            log_level = \(tomlString(options.logLevel))

            """
        // Started as root, fived serves as daemon_user, which no service may share:
        // the tests' services run as root or nobody, so fived serves as daemon.
        if TestDirectory.asRoot && !options.extraTOML.contains("daemon_user") { text += "daemon_user = \"daemon\"\n" }
        if !options.extraTOML.isEmpty { text += options.extraTOML + "\n" }
        for service in options.services { text += "\n" + service.toml }
        return text
    }

    /// The same setup as command-line flags only (services as `--service NAME=BACKEND`).
    func flagArguments(_ options: FivedOptions) -> [String] {
        var arguments = [
            "--listen", "127.0.0.1:0",
            "--host-key", options.hostKey ?? directory.file("host_ed25519_key"),
            "--log-level", options.logLevel,
        ]
        for path in options.authorizedKeys ?? [authorizedKeysPath] { arguments += ["--authorized-keys", path] }
        for service in options.services {
            switch service.backend {
            case .exec(let argv): arguments += ["--service", "\(service.name)=exec:\(argv.joined(separator: " "))"]
            case .connect(let target) where target.hasPrefix("unix:"): arguments += ["--service", "\(service.name)=\(target)"]
            case .connect(let target): arguments += ["--service", "\(service.name)=tcp:\(target)"]
            }
        }
        return arguments
    }

    /// Starts fived with a config file made from `options`, runs `body`, then stops it
    /// with SIGTERM and expects exit status 0. On an error the daemon is killed and its
    /// log printed; set FIVED_IT_LOGS=1 to print it always.
    func withFived<R>(
        _ options: FivedOptions = FivedOptions(), _ body: (Fived) async throws -> R
    ) async throws -> R {
        let fived = try await Fived.start(self, options)
        let result: R
        do {
            result = try await body(fived)
        } catch {
            print("--- fived log (test failed: \(error)) ---\n\(fived.logText)--- end ---")
            await fived.process.killGroup()
            throw error
        }
        let ended = await fived.stop()
        #expect(ended == .exited(0), "fived did not exit 0 on SIGTERM: \(ended.map { "\($0)" } ?? "still running after 10 s")\n\(fived.logText)")
        if ProcessInfo.processInfo.environment["FIVED_IT_LOGS"] != nil {
            print("--- fived log ---\n\(fived.logText)--- end ---")
        }
        return result
    }

    /// A fresh environment (`make()`) with fived started from `options` for `body`:
    /// for the tests that need nothing else of it (`fived.environment` holds it).
    static func withFived<R>(_ options: FivedOptions = FivedOptions(), _ body: (Fived) async throws -> R) async throws -> R {
        try await make().withFived(options, body)
    }

    /// Runs fived with exactly `arguments` (no generated config) to its end: for
    /// command-line and --check tests. Killed after `timeout`.
    func runFived(_ arguments: [String], timeout: Duration = .seconds(15)) async throws -> ProcessResult {
        try await runProcess(
            try Binaries.fived(), arguments, environment: Tools.environment(home: directory.path),
            scratch: directory.path, timeout: timeout)
    }
}

/// Which key an ssh run offers.
enum Identity: Sendable {
    /// The environment's authorized Ed25519 key.
    case defaultKey
    /// This key only (`-i KEY -o IdentitiesOnly=yes`).
    case key(ClientKey)
    /// No key file at all (keys come from the agent, if any).
    case none

    func key(default fallback: ClientKey) -> ClientKey? {
        switch self {
        case .defaultKey: fallback
        case .key(let key): key
        case .none: nil
        }
    }
}

/// A running fived, started by `TestEnvironment.withFived`.
final class Fived: Sendable {
    let environment: TestEnvironment
    let process: ChildProcess
    /// The SSH port it listens on (from its `listening address=` log line).
    let port: UInt16
    /// The plain TCPMUX port, when asked for (from its `listening for tcpmux address=` line).
    let tcpmuxPort: UInt16?
    let configPath: String
    let options: FivedOptions

    var directory: TestDirectory { environment.directory }
    var pid: pid_t { process.pid }

    private init(environment: TestEnvironment, process: ChildProcess, port: UInt16, tcpmuxPort: UInt16?, configPath: String, options: FivedOptions) {
        self.environment = environment
        self.process = process
        self.port = port
        self.tcpmuxPort = tcpmuxPort
        self.configPath = configPath
        self.options = options
    }

    static func start(_ environment: TestEnvironment, _ options: FivedOptions) async throws -> Fived {
        let configPath = environment.directory.file("\(options.name).toml")
        let arguments: [String]
        if options.useConfigFile {
            try environment.directory.write("\(options.name).toml", environment.configText(options))
            arguments = ["--config", configPath] + options.arguments
        } else {
            arguments = environment.flagArguments(options) + options.arguments
        }
        let tcpmux = options.tcpmux ? ["--tcpmux", "127.0.0.1:0"] : []
        let fived = try Binaries.fived()
        let command = options.launcher.isEmpty ? [fived] + arguments + tcpmux : options.launcher + [fived] + arguments + tcpmux
        let process = try ChildProcess.spawn(
            command[0], Array(command.dropFirst()),
            environment: Tools.environment(home: environment.directory.path, extra: options.environment),
            outputPrefix: environment.directory.file(options.name))
        do {
            let port = try await waitForListening(process)
            let tcpmuxPort = options.tcpmux ? try await waitForListening(process, message: "listening for tcpmux") : nil
            return Fived(environment: environment, process: process, port: port, tcpmuxPort: tcpmuxPort, configPath: configPath, options: options)
        } catch {
            await process.killGroup()
            throw error
        }
    }

    /// Waits for `listening address=HOST:PORT` (or another `message`) on stderr;
    /// fails at once if fived exits.
    static func waitForListening(
        _ process: ChildProcess, message: String = "listening", timeout: Duration = .seconds(20)
    ) async throws -> UInt16 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in process.stderr.split(whereSeparator: \.isNewline) {
                if let parsed = LogLine(line), parsed.message == message, let address = parsed["address"],
                    let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...])
                {
                    return port
                }
            }
            if let ended = process.poll() {
                throw HarnessError("fived ended (\(ended)) before listening; stderr:\n\(process.stderr)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("fived logged no '\(message) address=' within \(timeout); stderr:\n\(process.stderr)")
    }

    /// Sends SIGTERM and waits up to 10 s for the exit.
    func stop(signal: Int32 = SIGTERM) async -> Termination? {
        process.signal(signal)
        let ended = await process.wait(timeout: .seconds(10))
        if ended == nil { await process.killGroup() }
        return ended
    }

    /// The `channel closed` log lines so far.
    var channelClosedLines: [LogLine] { logLines.filter { $0.message == "channel closed" } }

    /// Everything fived has logged so far.
    var logText: String { process.stderr }

    /// fived's log so far, parsed.
    var logLines: [LogLine] { logText.split(whereSeparator: \.isNewline).compactMap(LogLine.init) }

    /// Waits until a log line satisfies `predicate` (log lines of a channel end may come
    /// just after the client has exited).
    @discardableResult
    func waitForLog(timeout: Duration = .seconds(10), _ predicate: (LogLine) -> Bool) async -> LogLine? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let found = logLines.first(where: predicate) { return found }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(25))
        }
    }

    // MARK: ssh

    /// The stock-ssh command line for this daemon: isolated from any user config,
    /// known_hosts in the test directory, no prompts, one identity.
    func sshArguments(
        _ options: [String], command: [String], key: ClientKey?, user: String?
    ) -> [String] {
        var arguments = [
            "-F", "/dev/null",
            "-o", "UserKnownHostsFile=\(environment.knownHostsPath)",
            "-o", "StrictHostKeyChecking=no",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=15",
            "-p", String(port),
            "-l", user ?? environment.user,
        ]
        if let key {
            arguments += ["-o", "IdentitiesOnly=yes", "-i", key.privatePath]
        }
        return arguments + options + ["127.0.0.1"] + command
    }

    /// Runs `ssh OPTIONS 127.0.0.1 COMMAND` to its end (killed after `timeout`).
    func ssh(
        _ options: [String] = [], command: [String] = [], identity: Identity = .defaultKey, user: String? = nil,
        stdin: StandardInput = .null, timeout: Duration = .seconds(30), agentSocket: String? = nil
    ) async throws -> ProcessResult {
        let chosenKey = identity.key(default: environment.key)
        var extra: [String: String] = [:]
        if let agentSocket { extra["SSH_AUTH_SOCK"] = agentSocket }
        return try await runProcess(
            try Tools.path("ssh"), sshArguments(options, command: command, key: chosenKey, user: user),
            environment: Tools.environment(home: directory.path, extra: extra), stdin: stdin,
            scratch: directory.path, timeout: timeout)
    }

    /// Starts ssh and returns at once, for clients that stay connected.
    func spawnSSH(
        _ options: [String] = [], command: [String] = [], identity: Identity = .defaultKey, user: String? = nil,
        stdin: StandardInput = .null, name: String
    ) throws -> ChildProcess {
        let chosenKey = identity.key(default: environment.key)
        return try ChildProcess.spawn(
            try Tools.path("ssh"), sshArguments(options, command: command, key: chosenKey, user: user),
            environment: Tools.environment(home: directory.path), stdin: stdin,
            outputPrefix: directory.file(name))
    }

    /// Starts an OpenSSH ControlMaster connection (`ssh -M -N`) and waits until
    /// it answers `-O check`; mux clients then use `-S` with the returned path.
    func startControlMaster(name: String = "ssh-master") async throws -> (master: ChildProcess, control: String) {
        let control = directory.file("\(name).ctl")
        let master = try spawnSSH(["-M", "-S", control, "-N", "-o", "ControlPersist=no"], name: name)
        let ready = try await eventually(timeout: .seconds(15)) {
            guard master.isRunning else { return true }
            return try await ssh(["-S", control, "-O", "check"], timeout: .seconds(5)).exitStatus == 0
        }
        guard ready && master.isRunning else {
            master.signal(SIGTERM)
            throw HarnessError("ControlMaster did not come up: \(master.stderr)")
        }
        return (master, control)
    }

    /// Writes `bytes` to a new file in the test directory, to feed a child's stdin.
    func input(_ bytes: [UInt8]) throws -> StandardInput {
        .file(try directory.write("stdin-\(UInt32.random(in: 0...UInt32.max))", bytes))
    }

    /// Sends `bytes` through `ssh -W NAME:1` (stdin EOF half-closes) and returns the result.
    func stdio(_ service: String, _ bytes: [UInt8], timeout: Duration = .seconds(60)) async throws -> ProcessResult {
        try await ssh(["-W", "\(service):1"], stdin: try input(bytes), timeout: timeout)
    }

    // MARK: what the daemon holds

    /// The pids of fived's living descendants (zombies included: an unreaped child is a leak too).
    func descendants() -> [pid_t] {
        var parents: [pid_t: pid_t] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = pid_t(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let rest = stat[stat.index(after: close)...].split(separator: " ")
            if rest.count > 1, let parent = pid_t(rest[1]) { parents[pid] = parent }
        }
        var found: [pid_t] = []
        var frontier: Set<pid_t> = [pid]
        while !frontier.isEmpty {
            let next = parents.filter { frontier.contains($0.value) }.map(\.key)
            found += next
            frontier = Set(next)
        }
        // fived's spawner lives as long as fived: its children count, not it.
        return found.filter { !Self.isSpawner($0) }.sorted()
    }

    /// True for `fived --internal-spawner`.
    static func isSpawner(_ pid: pid_t) -> Bool {
        guard let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
        return cmdline.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == "--internal-spawner" }
    }

    /// The descriptors fived holds open, by number, with what they point to.
    func openDescriptors() -> [String: String] {
        let directory = "/proc/\(pid)/fd"
        var result: [String: String] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            result[entry] = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(entry)")) ?? "?"
        }
        return result
    }
}

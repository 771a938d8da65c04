#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The three ways a client names a service (SPEC.md, "Channels"), as the client
/// matrix opens them.
enum ClientForm: String, CaseIterable, Sendable, CustomStringConvertible {
    /// `direct-tcpip` with the name in the host field (`ssh -W NAME:1`).
    case directTCPIP = "direct-tcpip"
    /// A session channel with `exec NAME`.
    case exec
    /// A session channel with `subsystem NAME`.
    case subsystem

    /// Session channels carry exit-status and exit-signal; direct-tcpip does not.
    var isSession: Bool { self != .directTCPIP }
    var description: String { rawValue }
    /// The `form=` fived logs for a channel of this form.
    var logged: String { rawValue }
}

/// How a session channel ended, as the client reported it.
enum ChannelOutcome: Equatable, Sendable, CustomStringConvertible {
    /// `exit-status` with this code.
    case exitStatus(Int32)
    /// `exit-signal` with this name; nil when the client saw the request but does
    /// not tell the name (OpenSSH's client).
    case exitSignal(String?)
    /// Neither (or the client does not say).
    case none

    var description: String {
        switch self {
        case .exitStatus(let code): "exit-status \(code)"
        case .exitSignal(let name): "exit-signal \(name ?? "(name not reported)")"
        case .none: "no exit report"
        }
    }
}

/// One client run of one channel, to its end.
struct ClientRun: Sendable, CustomStringConvertible {
    let client: MatrixClient
    let form: ClientForm
    let service: String
    /// The client process as it ended (stdout: the channel's data).
    let process: ProcessResult
    /// What the client says about how the channel ended.
    let outcome: ChannelOutcome
    /// False when the client itself failed (could not connect or open the
    /// channel, died, timed out), whatever the service did.
    let clientSucceeded: Bool

    var stdout: [UInt8] { process.stdout }

    var description: String {
        "\(client) \(form) \(service): \(clientSucceeded ? "ok" : "CLIENT FAILED"), \(outcome)\n\(process)"
    }
}

/// A client of the matrix, ready to open channels to one fived (keys converted,
/// host key known): each kind is in a harness file of its own.
protocol ChannelClient: Sendable {
    /// Opens one channel of `form` to `service`, sends the bytes of the file
    /// `input` (none when nil) then EOF, reads everything until the channel
    /// closes, and returns how it went. Killed after `timeout`.
    func run(_ form: ClientForm, _ service: String, input: String?, timeout: Duration) async throws -> ClientRun
}

/// The SSH clients the matrix drives (docs/clients.md): each is installed by
/// scripts/test.sh when missing, or its tests are skipped with the reason.
enum MatrixClient: String, CaseIterable, Sendable, CustomTestStringConvertible, CustomStringConvertible {
    /// OpenSSH's `ssh` (openssh-client).
    case openssh
    /// PuTTY's `plink` (putty-tools).
    case plink
    /// Dropbear's `dbclient` (dropbear-bin).
    case dbclient
    /// Python's paramiko (python3-paramiko), through Clients/paramiko_client.py.
    case paramiko
    /// Python's asyncssh (python3-asyncssh), through Clients/asyncssh_client.py.
    case asyncssh
    /// Go's golang.org/x/crypto/ssh (golang-go, golang-golang-x-crypto-dev),
    /// through Clients/go_client, built at test time.
    case go

    var description: String { rawValue }
    var testDescription: String { rawValue }

    /// The clients that can run here.
    static var installed: [MatrixClient] { allCases.filter { $0.missing == nil } }

    /// Why this client cannot run here (what to install), or nil.
    var missing: String? {
        switch self {
        case .openssh:
            return which("ssh") == nil ? "ssh is not installed (apt-get install openssh-client)" : nil
        case .plink:
            return program("/usr/bin/plink") == nil || program("/usr/bin/puttygen") == nil
                ? "plink/puttygen are not installed (apt-get install putty-tools)" : nil
        case .dbclient:
            return program("/usr/bin/dbclient") == nil || program("/usr/bin/dropbearconvert") == nil
                ? "dbclient/dropbearconvert are not installed (apt-get install dropbear-bin)" : nil
        case .paramiko:
            return PythonClient.missing(module: "paramiko", package: "python3-paramiko")
        case .asyncssh:
            return PythonClient.missing(module: "asyncssh", package: "python3-asyncssh")
        case .go:
            return GoSSHClient.missing
        }
    }

    /// The client's own account of its version, one line.
    func version(scratch: TestDirectory) async -> String {
        func firstLine(_ executable: String, _ arguments: [String], stderr: Bool = false) async -> String {
            guard
                let result = try? await runProcess(
                    executable, arguments, environment: Tools.environment(home: scratch.path), scratch: scratch.path)
            else { return "?" }
            let text = stderr ? result.stderr : result.stdoutText
            return nonEmptyLines(text).first ?? "?"
        }
        switch self {
        case .openssh: return await firstLine((try? Tools.path("ssh")) ?? "ssh", ["-V"], stderr: true)
        case .plink: return await firstLine("/usr/bin/plink", ["-V"])
        case .dbclient: return await firstLine("/usr/bin/dbclient", ["-V"], stderr: true)
        case .paramiko: return await firstLine(PythonClient.python, [PythonClient.script("paramiko"), "--version"])
        case .asyncssh: return await firstLine(PythonClient.python, [PythonClient.script("asyncssh"), "--version"])
        case .go:
            guard let binary = try? await GoSSHClient.binary() else { return "? (the Go client did not build)" }
            return await firstLine(binary, ["-version"])
        }
    }

    /// A driver for this client against `fived` (keys converted in its directory).
    func client(for fived: Fived) async throws -> any ChannelClient {
        switch self {
        case .openssh: return OpenSSHClient(fived: fived)
        case .plink: return try await PlinkClient(fived: fived)
        case .dbclient: return try await DropbearClient(fived: fived)
        case .paramiko: return PythonClient(fived: fived, library: .paramiko)
        case .asyncssh: return PythonClient(fived: fived, library: .asyncssh)
        case .go: return try await GoSSHClient(fived: fived)
        }
    }

    /// What the client reports, and how its process exits, for a session whose
    /// service exited with `code` or was killed by SIGKILL (`code` nil).
    func expected(exitCode code: Int32?) -> (outcome: ChannelOutcome, processStatus: Int32) {
        switch (self, code) {
        case (.openssh, let code?): return (.exitStatus(code), code)
        // ssh keeps no signal name: its -v log shows the exit-signal request, and it exits 255.
        case (.openssh, nil): return (.exitSignal(nil), 255)
        case (.plink, let code?): return (.exitStatus(code), code)
        // PuTTY 0.78's Unix build does not map "KILL" back to a number ("unrecognised
        // signal"), so it exits 128; against sshd too.
        case (.plink, nil): return (.exitSignal("KILL"), 128)
        case (.dbclient, let code?): return (.exitStatus(code), code)
        // Dropbear's client ignores exit-signal and exits 0 (against sshd too): the
        // signal cannot be seen through it.
        case (.dbclient, nil): return (.exitStatus(0), 0)
        case (_, let code?): return (.exitStatus(code), 0)
        case (_, nil): return (.exitSignal("KILL"), 0)
        }
    }
}

/// The line the helper clients (Clients/*.py, Clients/go_client) end stderr with:
/// `fived-client result: exit-status=N | exit-signal=NAME | none`.
func helperOutcome(_ stderr: String) -> ChannelOutcome? {
    let prefix = "fived-client result: "
    guard let line = stderr.split(whereSeparator: \.isNewline).last(where: { $0.hasPrefix(prefix) }) else { return nil }
    let value = line.dropFirst(prefix.count)
    if value.hasPrefix("exit-status="), let code = Int32(value.dropFirst("exit-status=".count)) { return .exitStatus(code) }
    if value.hasPrefix("exit-signal=") { return .exitSignal(String(value.dropFirst("exit-signal=".count))) }
    if value == "none" { return ChannelOutcome.none }
    return nil
}

/// The Tests/IntegrationTests/Clients folder: the helper programs the matrix runs.
enum ClientPrograms {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Clients").path

    static func path(_ name: String) -> String { "\(directory)/\(name)" }
}

extension Fived {
    /// The host key fingerprint fived logged when it generated its key
    /// (`generated host key fingerprint=SHA256:...`).
    var hostKeyFingerprint: String? {
        logLines.first { $0.message == "generated host key" }?["fingerprint"]
    }
}

/// The client matrix moves gigabytes through SSH on a 2-core machine while the other
/// suites run beside it, some of them timing-sensitive (an echo within 1 s, a channel
/// end within 5 s). So everything the matrix starts runs at a low CPU priority: the
/// clients under `nice -n 10`, and each of its fiveds (every thread, and so every
/// service it forks) reniced to 10. Alone, the matrix is as fast as ever; beside other
/// tests, it gets about a tenth of what they want (nice 10 weighs 110 against 1024),
/// which keeps them on time without starving the matrix outright. On a machine
/// loaded by other work the matrix then gets little: FIVED_IT_CLIENT_NICE=0 runs it
/// at normal priority.
enum LowPriority {
    static let niceness: Int32 = ProcessInfo.processInfo.environment["FIVED_IT_CLIENT_NICE"].flatMap { Int32($0) } ?? 10
    static let nice = program("/usr/bin/nice", "/bin/nice")

    /// `executable arguments` run under `nice -n 10` (as is where nice is missing).
    static func command(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        guard let nice, niceness != 0 else { return (executable, arguments) }
        return (nice, ["-n", String(niceness), executable] + arguments)
    }

    /// Lowers every thread of `pid` (Linux nice values are per thread; threads and
    /// children made later inherit their creator's).
    static func lower(_ pid: pid_t) {
        guard niceness != 0 else { return }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
            if let thread = id_t(entry) { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), thread, niceness) }
        }
    }

    /// `runProcess` at low priority.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String],
        stdin: StandardInput = .null, scratch: String, timeout: Duration
    ) async throws -> ProcessResult {
        let (program, words) = command(executable, arguments)
        return try await runProcess(program, words, environment: environment, stdin: stdin, scratch: scratch, timeout: timeout)
    }

    /// `ChildProcess.spawn` at low priority.
    static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String],
        stdin: StandardInput = .null, outputPrefix: String
    ) throws -> ChildProcess {
        let (program, words) = command(executable, arguments)
        return try ChildProcess.spawn(program, words, environment: environment, stdin: stdin, outputPrefix: outputPrefix)
    }
}

extension TestEnvironment {
    /// `withFived`, with the daemon at low CPU priority (see `LowPriority`).
    func withLowPriorityFived<R>(_ options: FivedOptions, _ body: (Fived) async throws -> R) async throws -> R {
        try await withFived(options) { fived in
            LowPriority.lower(fived.pid)
            return try await body(fived)
        }
    }
}

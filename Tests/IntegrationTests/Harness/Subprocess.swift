#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// How a child process ended.
enum Termination: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Decodes a `waitpid` status word (the W* macros are not visible to Swift).
    init(waitStatus status: Int32) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(status & 0x7f)
        }
    }

    var description: String {
        switch self {
        case .exited(let code): "exit \(code)"
        case .signaled(let sig): "signal \(sig)"
        }
    }
}

/// What a child reads on its standard input.
enum StandardInput: Sendable {
    /// /dev/null: immediate EOF.
    case null
    /// The bytes of this file, then EOF.
    case file(String)
    /// A pipe whose write end the test keeps (see `ChildProcess.stdinWriter`).
    case pipe
    /// A new pseudo-terminal (so `isatty(0)` holds, as for a user at a terminal);
    /// the test keeps the master side and types nothing.
    case terminal
    /// A connected socket as both stdin and stdout, as inetd gives a server
    /// (`sshd -i`); the caller keeps (and closes) its own descriptor.
    case socket(Int32)
}

/// Errors of the harness itself (not of fived).
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A process started with posix_spawn, in its own process group, with default signal
/// dispositions and an empty signal mask, and no descriptor of the test runner but 0, 1 and 2.
///
/// stdout and stderr go to files (no pipe to drain, so no deadlock however much a child
/// prints); the result is read once the child has ended.
final class ChildProcess: Sendable {
    let pid: pid_t
    let executable: String
    let stdoutPath: String
    let stderrPath: String
    /// The write end of the child's stdin when it was started with `.pipe`.
    let stdinWriter: Mutex<Int32>
    private let reaped = Mutex<Termination?>(nil)

    private init(pid: pid_t, executable: String, stdoutPath: String, stderrPath: String, stdinWriter: Int32) {
        self.pid = pid
        self.executable = executable
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
        self.stdinWriter = Mutex(stdinWriter)
    }

    deinit {
        closeStdin()
        if reaped.withLock({ $0 }) == nil {
            // A test that forgot (or failed before) stopping its child: do not leave it running.
            Glibc.kill(-pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }

    /// Starts `executable` with `arguments` (argv[0] is the executable path) and exactly
    /// `environment`; output goes to `outputPrefix`.stdout / .stderr.
    static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String],
        stdin: StandardInput = .null, outputPrefix: String
    ) throws -> ChildProcess {
        let stdoutPath = outputPrefix + ".stdout"
        let stderrPath = outputPrefix + ".stderr"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var pipeFDs: [Int32] = [-1, -1]
        switch stdin {
        case .null:
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        case .file(let path):
            posix_spawn_file_actions_addopen(&actions, 0, path, O_RDONLY, 0)
        case .pipe:
            guard GNU.pipeCloexec(&pipeFDs) == 0 else { throw HarnessError("pipe2: \(errnoText())") }
            posix_spawn_file_actions_adddup2(&actions, pipeFDs[0], 0)
        case .terminal:
            let (master, slavePath) = try GNU.openPseudoTerminal()
            pipeFDs[1] = master  // kept open (and closed) like a pipe's write end
            posix_spawn_file_actions_addopen(&actions, 0, slavePath, O_RDWR | O_NOCTTY, 0)
        case .socket(let fd):
            posix_spawn_file_actions_adddup2(&actions, fd, 0)
        }
        if case .socket(let fd) = stdin {
            posix_spawn_file_actions_adddup2(&actions, fd, 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Whatever the test runner has open (other tests' sockets, pipes) stays out of the child.
        GNU.addCloseFrom(&actions, 3)

        // Own process group (so a timeout can kill the whole tree), default signal
        // dispositions and no blocked signals, whatever the test runner set for itself.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2] {
            sigaddset(&defaults, sig)
        }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes,
            Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") }
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (envp + [nil]).withUnsafeBufferPointer { envpBuffer in
                posix_spawn(
                    &pid, executable, &actions, &attributes,
                    UnsafeMutablePointer(mutating: argvBuffer.baseAddress!),
                    UnsafeMutablePointer(mutating: envpBuffer.baseAddress!))
            }
        }
        if pipeFDs[0] >= 0 { close(pipeFDs[0]) }
        guard rc == 0 else {
            if pipeFDs[1] >= 0 { close(pipeFDs[1]) }
            throw HarnessError("posix_spawn \(executable): \(String(cString: strerror(rc)))")
        }
        return ChildProcess(
            pid: pid, executable: executable, stdoutPath: stdoutPath, stderrPath: stderrPath,
            stdinWriter: pipeFDs[1])
    }

    /// The termination status if the child has ended (reaps it once).
    func poll() -> Termination? {
        reaped.withLock { state in
            if let state { return state }
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid {
                state = Termination(waitStatus: status)
            } else if rc < 0 && errno == ECHILD {
                state = .signaled(0)  // reaped elsewhere: should not happen
            }
            return state
        }
    }

    /// True while the child has not ended.
    var isRunning: Bool { poll() == nil }

    /// Waits until the child ends or `timeout` passes (then returns nil; the child runs on).
    func wait(timeout: Duration) async -> Termination? {
        let deadline = ContinuousClock.now + timeout
        var delay = 2
        while true {
            if let done = poll() { return done }
            if ContinuousClock.now >= deadline { return nil }
            do {
                try await Task.sleep(for: .milliseconds(delay))
            } catch {
                return poll()  // cancelled (time limit): let the caller clean up
            }
            delay = min(delay * 2, 25)
        }
    }

    /// Sends `signal` to the child only.
    func signal(_ signal: Int32) {
        if poll() == nil { _ = Glibc.kill(pid, signal) }
    }

    /// Kills the child's whole process group with SIGKILL and reaps the child.
    func killGroup() async {
        _ = Glibc.kill(-pid, SIGKILL)
        _ = Glibc.kill(pid, SIGKILL)
        _ = await wait(timeout: .seconds(10))
    }

    /// Closes the write end of a `.pipe` stdin: the child reads EOF.
    func closeStdin() {
        stdinWriter.withLock { fd in
            if fd >= 0 { close(fd); fd = -1 }
        }
    }

    /// Writes all of `bytes` to the child's `.pipe` stdin (off the cooperative pool).
    func writeStdin(_ bytes: [UInt8]) async throws {
        let fd = stdinWriter.withLock { $0 }
        guard fd >= 0 else { throw HarnessError("stdin is not an open pipe") }
        try await onThread { try Sockets.writeAll(fd, bytes) }
    }

    /// Everything the child has written to stdout so far.
    var stdout: [UInt8] { (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: stdoutPath)))) ?? [] }
    /// Everything the child has written to stderr so far, as text.
    var stderr: String { String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: stderrPath))) ?? Data(), as: UTF8.self) }
}

/// The outcome of a process run to its end.
struct ProcessResult: Sendable, CustomStringConvertible {
    let command: [String]
    /// nil when the run timed out and the child was killed.
    let termination: Termination?
    let stdout: [UInt8]
    let stderr: String

    var timedOut: Bool { termination == nil }
    /// The exit status, or nil when it was killed by a signal or timed out.
    var exitStatus: Int32? {
        if case .exited(let code) = termination { return code }
        return nil
    }
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }

    var description: String {
        let status = termination.map { "\($0)" } ?? "TIMED OUT (killed)"
        let out = stdout.count > 2000 ? "<\(stdout.count) bytes>" : stdoutText
        return "$ \(command.joined(separator: " "))\n[\(status)]\nstdout: \(out)\nstderr: \(stderr)"
    }
}

private let outputCounter = Atomic<Int>(0)

/// Runs a process to its end, killing its process group after `timeout`.
func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String],
    stdin: StandardInput = .null, scratch: String, timeout: Duration = .seconds(30)
) async throws -> ProcessResult {
    let n = outputCounter.add(1, ordering: .relaxed).newValue
    let name = (executable as NSString).lastPathComponent
    let child = try ChildProcess.spawn(
        executable, arguments, environment: environment, stdin: stdin,
        outputPrefix: "\(scratch)/run-\(n)-\(name)")
    var termination = await child.wait(timeout: timeout)
    if termination == nil {
        await child.killGroup()
        termination = nil
    }
    if Task.isCancelled { await child.killGroup() }
    return ProcessResult(
        command: [executable] + arguments, termination: termination, stdout: child.stdout,
        stderr: child.stderr)
}

/// Runs `body` on a fresh thread, so blocking system calls never hold one of the
/// (two, on this machine) threads of Swift's cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}

/// strerror(errno) as text.
func errnoText() -> String { String(cString: strerror(errno)) }

/// The absolute path of a program found on PATH (or the standard locations).
func which(_ program: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    for dir in path.split(separator: ":").map(String.init) + ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let candidate = "\(dir)/\(program)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}

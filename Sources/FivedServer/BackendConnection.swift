import CSystem
import FivedCore
import FivedRuntime
import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// A connected backend: a non-blocking stream, and for exec backends the child
/// process and its stderr pipe. Each descriptor is owned, and closed by whoever
/// takes it down after unregistering it.
final class BackendConnection {
    /// The stream to the service (a socket, or fived's end of an exec service's socketpair).
    private(set) var stream: Descriptor?
    /// exec backends: the read end of the child's stderr.
    private(set) var errors: Descriptor?
    /// exec backends: the child.
    let process: ServiceProcess?
    /// The stream as a relay end (read toward the client, written toward the service).
    let streamEnd: DescriptorEnd
    /// The stderr pipe as a relay source, for exec backends.
    let errorsEnd: DescriptorEnd?

    /// The stream is a pseudo-terminal's master (a `pty = true` exec service).
    let isTerminal: Bool

    init(stream: Descriptor, errors: Descriptor? = nil, process: ServiceProcess? = nil, isTerminal: Bool = false) {
        self.stream = stream
        self.errors = errors
        self.process = process
        self.isTerminal = isTerminal
        self.streamEnd = DescriptorEnd(fd: stream.rawValue, isSocket: !isTerminal)
        self.errorsEnd = errors.map { DescriptorEnd(fd: $0.rawValue, isSocket: false) }
    }

    func closeStream() {
        stream?.close()
        stream = nil
    }

    func closeErrors() {
        errors?.close()
        errors = nil
    }

    /// Stops reading the service's stream (the client reads no more): an exec
    /// program's next write to it fails with EPIPE; a socket service's writes
    /// are left to its own flow control.
    func shutdownOutput() {
        if let stream, !isTerminal { Syscall.shutdownRead(stream.rawValue) }
    }

    /// Half-close toward the service: it reads EOF. A terminal has no half-close:
    /// the program keeps its terminal, as under sshd, and ends on its own (or
    /// when the channel closes).
    func shutdownInput() {
        if let stream, !isTerminal { Syscall.shutdownWrite(stream.rawValue) }
    }
}

/// A service's process (exec backends): its pid, and a pidfd that polls readable once it exits.
final class ServiceProcess {
    let pid: pid_t
    /// Readable once the process exited; nil once closed.
    private(set) var pidFD: Descriptor?
    private(set) var reaped = false {
        didSet { if reaped && !oldValue { DaemonMetrics.shared.execEnded() } }
    }

    init(pid: pid_t, pidFD: Descriptor) {
        self.pid = pid
        self.pidFD = pidFD
        DaemonMetrics.shared.execStarted()
    }

    /// True while the process has not been reaped.
    var isRunning: Bool { !reaped }

    /// Reaps the process if it has exited; returns its wait status.
    func reap() -> Int32? {
        guard !reaped else { return nil }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid {
            reaped = true
            return status
        }
        if rc < 0 && errno == ECHILD {
            reaped = true  // already reaped elsewhere: nothing left to wait for
            return 0
        }
        return nil
    }

    /// Signals the process group (the child leads its own session, see `BackendConnector.spawn`).
    func signalGroup(_ sig: Int32) {
        guard !reaped else { return }
        _ = Glibc.kill(-pid, sig)
    }

    /// Kills the child and reaps it at once (it was never handed to a channel).
    func kill() {
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        reaped = true
        closePidFD()
    }

    func closePidFD() {
        pidFD?.close()
        pidFD = nil
    }
}

/// Why a backend could not be reached, for the log (never sent to the client).
struct BackendFailure: Error, CustomStringConvertible {
    /// What failed, stable for matching.
    enum Code: String {
        case resolve, connect, timeout, spawn, tooLong, published
    }

    let code: Code
    let description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// A backend connect in progress: a non-blocking connect to one of the
/// service's addresses, tried in order, bounded by a deadline. The worker polls
/// `descriptor` for writability and calls `advance()`; it never waits.
final class PendingConnect {
    private(set) var descriptor: Descriptor
    private var remaining: [SocketAddress]
    private let target: String
    let deadline: Int64
    private var lastError = "no address"

    fileprivate init(descriptor: Descriptor, remaining: [SocketAddress], target: String, deadline: Int64) {
        self.descriptor = descriptor
        self.remaining = remaining
        self.target = target
        self.deadline = deadline
    }

    /// What a step of the connect came to.
    enum Progress {
        case connected(BackendConnection)
        /// Still connecting (perhaps on a new descriptor: register it again).
        case pending
        case failed(BackendFailure)
    }

    /// Checks the connect after the descriptor polled writable (or at the deadline).
    func advance(now: Int64) -> Progress {
        let e = Socket.connectResult(descriptor.rawValue)
        // SO_ERROR is 0 both once connected and while still connecting: only a peer address tells them apart.
        if e == 0 && SocketAddress.peer(of: descriptor.rawValue) != nil {
            return .connected(BackendConnector.connected(descriptor))
        }
        if e == 0 || e == EINPROGRESS || e == EALREADY {
            if now >= deadline { return .failed(BackendFailure(.timeout, "\(target): connect timed out")) }
            return .pending
        }
        lastError = errnoText(e)
        descriptor.close()
        return next(now: now)
    }

    /// Gives up (the channel went away or the deadline passed).
    func cancel() {
        descriptor.close()
    }

    /// Starts the connect to the next address, if any.
    fileprivate func next(now: Int64) -> Progress {
        while !remaining.isEmpty {
            if now >= deadline { return .failed(BackendFailure(.timeout, "\(target): connect timed out")) }
            let address = remaining.removeFirst()
            do {
                let fd = try Socket.stream(family: address.family)
                switch try Socket.connect(fd.rawValue, to: address) {
                case .connected: return .connected(BackendConnector.connected(fd))
                case .inProgress:
                    descriptor = fd
                    return .pending
                }
            } catch {
                lastError = error.reason
            }
        }
        return .failed(BackendFailure(.connect, "\(target): \(lastError)"))
    }
}

/// A channel toward a publisher that the caller's open waits for: the
/// publisher's worker opens a forwarded-tcpip channel on the publisher's
/// connection and answers (by `token`) once the publisher's client confirmed or
/// refused it. The caller's end of the socketpair joining the two channels
/// becomes the backend stream on success.
final class PublisherOpen {
    let token: UInt64
    let stream: Descriptor
    let deadline: Int64

    init(token: UInt64, stream: Descriptor, deadline: Int64) {
        self.token = token
        self.stream = stream
        self.deadline = deadline
    }
}

/// A backend open that has not finished.
enum PendingBackend {
    /// A socket connect in progress (the worker polls it).
    case connect(PendingConnect)
    /// A forwarded-tcpip open toward a publisher (its worker answers).
    case publisher(PublisherOpen)

    var deadline: Int64 {
        switch self {
        case .connect(let connect): return connect.deadline
        case .publisher(let open): return open.deadline
        }
    }

    /// Gives up: closes what it holds.
    func cancel() {
        switch self {
        case .connect(let connect): connect.cancel()
        case .publisher(let open): open.stream.close()
        }
    }
}

/// Opens backends without waiting: exec services are spawned at once, socket
/// connects are started and, if they do not complete at once, handed back as a
/// `PendingConnect` for the worker to finish.
enum BackendConnector {
    /// How a backend open began.
    enum Start {
        case ready(BackendConnection)
        case pending(PendingBackend)
    }

    /// Opens `backend`; `terminal` applies to exec backends only (see `spawn`).
    static func start(_ backend: Backend, environment: [String], timeoutMilliseconds: Int64, terminal: TerminalRequest? = nil)
        throws(BackendFailure) -> Start
    {
        switch backend {
        case .tcp(let host, let port):
            let addresses: [SocketAddress]
            do {
                addresses = try SocketAddress.resolve(host: host, port: port, passive: false)
            } catch {
                throw BackendFailure(.resolve, "cannot resolve \(host): \(error.reason)")
            }
            let placeholder = Descriptor(-1)
            let pending = PendingConnect(
                descriptor: placeholder, remaining: addresses, target: "tcp:\(host):\(port)",
                deadline: MonotonicClock.now + timeoutMilliseconds)
            switch pending.next(now: MonotonicClock.now) {
            case .connected(let connection): return .ready(connection)
            case .pending: return .pending(.connect(pending))
            case .failed(let failure): throw failure
            }
        case .unix(let path):
            return .ready(try connectUnix(path: path))
        case .exec(let argv):
            return .ready(try spawn(argv: argv, environment: environment, terminal: terminal))
        }
    }

    /// A connected TCP socket, tuned for the relay.
    fileprivate static func connected(_ fd: Descriptor) -> BackendConnection {
        Socket.setOption(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        return BackendConnection(stream: fd)
    }

    static func connectUnix(path: String) throws(BackendFailure) -> BackendConnection {
        do throws(SystemError) {
            let address = try SocketAddress.unix(path: path)
            let fd = try Socket.stream(family: AF_UNIX)
            switch try Socket.connect(fd.rawValue, to: address) {
            case .connected:
                return BackendConnection(stream: fd)
            case .inProgress:
                // Linux completes or refuses Unix stream connects at once; anything else is a refusal.
                throw SystemError("connect", errno: ECONNREFUSED, subject: path)
            }
        } catch {
            if error.errno == ENAMETOOLONG { throw BackendFailure(.tooLong, "unix:\(path): path too long") }
            throw BackendFailure(.connect, "unix:\(path): \(error.reason)")
        }
    }

    /// Starts an exec backend as inetd does: stdin and stdout are one end of a
    /// socketpair, stderr a pipe, a new session (so the whole group can be signalled),
    /// default signal dispositions, cwd "/", exactly `environment`, and no other descriptor.
    /// With `terminal` (a `pty = true` service whose client was granted a pty),
    /// stdin, stdout and stderr are instead the slave of a new pseudo-terminal
    /// with the client's modes and size, which becomes the child's controlling
    /// terminal, and `TERM` is the client's.
    static func spawn(argv: [String], environment: [String], terminal: TerminalRequest? = nil) throws(BackendFailure) -> BackendConnection {
        guard let program = argv.first else { throw BackendFailure(.spawn, "exec: empty command") }
        if let terminal { return try spawnOnTerminal(program: program, argv: argv, environment: environment, terminal: terminal) }
        let pair: (Descriptor, Descriptor)
        let errPipe: (read: Descriptor, write: Descriptor)
        do {
            pair = try Syscall.socketPair(nonBlocking: false)
            errPipe = try Syscall.pipe(nonBlocking: false)
        } catch {
            throw BackendFailure(.spawn, "exec \(program): \(error)")
        }
        defer {
            pair.1.close()
            errPipe.write.close()
        }
        let process = try start(program: program, argv: argv, environment: environment) { actions in
            posix_spawn_file_actions_adddup2(&actions, pair.1.rawValue, 0)
            posix_spawn_file_actions_adddup2(&actions, pair.1.rawValue, 1)
            posix_spawn_file_actions_adddup2(&actions, errPipe.write.rawValue, 2)
        }
        do {
            try Syscall.setNonBlocking(pair.0.rawValue)
            try Syscall.setNonBlocking(errPipe.read.rawValue)
        } catch {
            process.kill()
            throw BackendFailure(.spawn, "exec \(program): \(error)")
        }
        return BackendConnection(stream: pair.0, errors: errPipe.read, process: process)
    }

    /// The `terminal` form of `spawn`: the child, leading a new session, opens
    /// the slave by path as descriptor 0 (its first terminal, so its controlling
    /// one) and duplicates it to 1 and 2; glibc's posix_spawn runs `setsid`
    /// before the file actions (spawni.c).
    private static func spawnOnTerminal(program: String, argv: [String], environment: [String], terminal: TerminalRequest)
        throws(BackendFailure) -> BackendConnection
    {
        let pty: PseudoTerminal
        do {
            pty = try PseudoTerminal()
            try pty.updateAttributes { terminal.modes.apply(to: &$0) }
            let size = terminal.clampedSize
            try pty.setWindowSize(rows: size.rows, columns: size.columns, widthPixels: size.widthPixels, heightPixels: size.heightPixels)
        } catch {
            throw BackendFailure(.spawn, "exec \(program): pseudo-terminal: \(error)")
        }
        defer { pty.closeSlave() }
        var environment = environment
        if !terminal.term.isEmpty { environment.append("TERM=\(terminal.term)") }
        let process: ServiceProcess
        do {
            process = try start(program: program, argv: argv, environment: environment) { actions in
                _ = fived_spawn_addopen(&actions, 0, pty.slavePath, O_RDWR)
                posix_spawn_file_actions_adddup2(&actions, 0, 1)
                posix_spawn_file_actions_adddup2(&actions, 0, 2)
            }
        } catch {
            pty.master.close()
            throw error
        }
        return BackendConnection(stream: pty.master, process: process, isTerminal: true)
    }

    /// posix_spawn with the file actions `setUp` adds, then: every descriptor
    /// from 3 up closed, cwd "/", a new session, default signals; and a pidfd
    /// for the child (without one its exit could not be noticed, so it is killed).
    private static func start(
        program: String, argv: [String], environment: [String], _ setUp: (inout posix_spawn_file_actions_t) -> Void
    ) throws(BackendFailure) -> ServiceProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        setUp(&actions)
        _ = fived_spawn_addclosefrom(&actions, 3)
        _ = fived_spawn_addchdir(&actions, "/")

        var attr = ChildAttributes(newSession: true)
        defer { attr.destroy() }

        var pid: pid_t = 0
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        let rc = posix_spawn(&pid, program, &actions, &attr.value, cArgv, cEnv)
        guard rc == 0 else {
            throw BackendFailure(.spawn, "exec \(program): \(errnoText(rc))")
        }
        do {
            let pidFD = Descriptor(try Syscall.retrying("pidfd_open") { fived_pidfd_open(pid) })
            Syscall.setCloseOnExec(pidFD.rawValue)
            return ServiceProcess(pid: pid, pidFD: pidFD)
        } catch {
            _ = Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            throw BackendFailure(.spawn, "exec \(program): \(error)")
        }
    }
}

/// posix_spawn attributes for a child of fived: every signal at its default
/// disposition (fived ignores SIGPIPE, and ignored signals survive exec), none
/// blocked, and optionally a session of its own so its whole group can be signalled.
struct ChildAttributes {
    var value = posix_spawnattr_t()

    init(newSession: Bool) {
        posix_spawnattr_init(&value)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&value, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&value, &empty)
        posix_spawnattr_setflags(&value, fived_spawn_flags(newSession ? 1 : 0))
    }

    mutating func destroy() {
        posix_spawnattr_destroy(&value)
    }
}

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

/// What a service's process tells when it ends.
protocol ProcessOwner: AnyObject {
    /// The process exited; its `status` is set.
    func processExited()
}

/// A service's process (exec backends), a child of the spawner: fived cannot
/// wait for it or signal it itself (it runs as another user), so its exit
/// arrives as the spawner's report and signals go through the spawner. Used on
/// its worker's thread only.
final class ServiceProcess {
    /// Named by its start request when signalled or retired, never by pid.
    let child: SpawnedChild
    private let spawner: SpawnerLink
    /// Its wait(2) status, once the spawner reported the exit.
    private(set) var status: Int32?
    /// Told of the exit (the channel or TCPMUX connection using the process).
    weak var owner: ProcessOwner?

    init(_ child: SpawnedChild, spawner: SpawnerLink) {
        self.child = child
        self.spawner = spawner
        DaemonMetrics.shared.execStarted()
    }

    /// True until the spawner reported its exit.
    var isRunning: Bool { status == nil }

    /// The spawner reaped it.
    func exited(_ status: Int32) {
        guard self.status == nil else { return }
        self.status = status
        DaemonMetrics.shared.execEnded()
        owner?.processExited()
    }

    /// Signals the process group (the child leads its own session).
    func signalGroup(_ sig: Int32) {
        guard isRunning else { return }
        spawner.signal(child, sig)
    }

    /// fived is done with it: SIGHUP now, SIGKILL 2 s later (by the spawner).
    func retire() {
        guard isRunning else { return }
        spawner.retire(child)
    }
}

/// An exec service being started by the spawner: the daemon's ends of the
/// descriptors it handed over (the stream, the stderr pipe or the terminal's
/// master), waiting for the spawner's answer by `id`.
final class PendingProcess: @unchecked Sendable {
    let service: ServiceName
    let stream: Descriptor
    let errors: Descriptor?
    let isTerminal: Bool
    let deadline: Int64
    /// The worker that waits; it hears the answer in its inbox.
    unowned let worker: Worker
    /// Set when the answer came (or the wait was given up), so a late answer retires the process.
    var settled = false

    init(service: ServiceName, stream: Descriptor, errors: Descriptor?, isTerminal: Bool, deadline: Int64, worker: Worker) {
        self.service = service
        self.stream = stream
        self.errors = errors
        self.isTerminal = isTerminal
        self.deadline = deadline
        self.worker = worker
    }

    func cancel() {
        settled = true
        stream.close()
        errors?.close()
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
    /// An exec service the spawner is starting (its answer comes to the worker's inbox).
    case process(PendingProcess)

    var deadline: Int64 {
        switch self {
        case .connect(let connect): return connect.deadline
        case .publisher(let open): return open.deadline
        case .process(let process): return process.deadline
        }
    }

    /// Gives up: closes what it holds.
    func cancel() {
        switch self {
        case .connect(let connect): connect.cancel()
        case .publisher(let open): open.stream.close()
        case .process(let process): process.cancel()
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

    /// Opens a socket `backend` (exec backends go through `Worker.startProcess`).
    static func start(_ backend: Backend, timeoutMilliseconds: Int64) throws(BackendFailure) -> Start {
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
        case .exec:
            // Exec services are started by the spawner: see `Worker.startProcess`.
            throw BackendFailure(.spawn, "an exec service is started through the spawner")
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

import CSystem
import FivedCore
#if canImport(Glibc)
import Glibc
#endif

/// A connected backend: a non-blocking stream descriptor, and for exec backends
/// the child process, its stderr pipe and a pidfd that polls readable at exit.
final class BackendConnection {
    /// The stream to the service (socket, or our end of the exec socketpair).
    private(set) var fd: Int32
    /// exec backends: the child's stderr (read end), -1 otherwise or once closed.
    private(set) var stderrFD: Int32
    /// exec backends: the child.
    let pid: pid_t?
    /// exec backends: readable once the child exited; -1 once reaped.
    private(set) var pidFD: Int32

    init(fd: Int32, stderrFD: Int32 = -1, pid: pid_t? = nil, pidFD: Int32 = -1) {
        self.fd = fd
        self.stderrFD = stderrFD
        self.pid = pid
        self.pidFD = pidFD
    }

    deinit {
        closeStream()
        closeStderr()
        if pidFD >= 0 { Sys.close(pidFD) }
    }

    func closeStream() {
        Sys.close(fd)
        fd = -1
    }

    func closeStderr() {
        Sys.close(stderrFD)
        stderrFD = -1
    }

    /// Reaps the child if it has exited; returns its wait status. The pidfd stays
    /// open until `closeProcessDescriptor` (it may still be registered with a poll set).
    func reap() -> Int32? {
        guard let pid, !reaped else { return nil }
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

    private(set) var reaped = false

    func closeProcessDescriptor() {
        Sys.close(pidFD)
        pidFD = -1
    }

    /// True while the child has not been reaped.
    var childRunning: Bool { pid != nil && !reaped }

    /// Signals the child's process group (it is a session leader, see `spawn`).
    func signalChild(_ sig: Int32) {
        guard let pid, !reaped else { return }
        // The child leads its own session and process group (POSIX_SPAWN_SETSID).
        _ = kill(-pid, sig)
    }
}

/// Why a backend could not be reached, for the log (never sent to the client).
struct BackendFailure: Error, CustomStringConvertible {
    let description: String
}

/// Opens backends. Connects are non-blocking with a bounded wait, because the
/// open decision must be made inside libssh's callback (the message dies with it).
enum BackendConnector {
    /// The longest a channel open waits for a TCP backend to accept.
    static let connectTimeoutMilliseconds: Int32 = 3000

    static func connect(_ backend: Backend, environment: [String]) throws(BackendFailure) -> BackendConnection {
        switch backend {
        case .tcp(let host, let port):
            return try connectTCP(host: host, port: port)
        case .unix(let path):
            return try connectUnix(path: path)
        case .exec(let argv):
            return try spawn(argv: argv, environment: environment)
        }
    }

    static func connectTCP(host: String, port: UInt16) throws(BackendFailure) -> BackendConnection {
        let addresses: [(family: Int32, storage: sockaddr_storage, length: socklen_t)]
        do {
            addresses = try AddressResolver.resolve(host: host, port: port, passive: false)
        } catch {
            throw BackendFailure(description: "cannot resolve \(host): \(error)")
        }
        var lastError = "no address"
        for a in addresses {
            let fd = socket(a.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            var storage = a.storage
            let rc = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, a.length) }
            }
            if rc == 0 || errno == EINPROGRESS || errno == EINTR {
                if rc != 0, let failure = waitConnected(fd) {
                    lastError = failure
                    Sys.close(fd)
                    continue
                }
                Sys.setSocketOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
                return BackendConnection(fd: fd)
            }
            lastError = String(cString: strerror(errno))
            Sys.close(fd)
        }
        throw BackendFailure(description: "tcp:\(host):\(port): \(lastError)")
    }

    /// Waits up to `connectTimeoutMilliseconds` for a non-blocking connect; nil on success.
    private static func waitConnected(_ fd: Int32) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        var rc: Int32
        repeat { rc = poll(&pfd, 1, connectTimeoutMilliseconds) } while rc < 0 && errno == EINTR
        if rc == 0 { return "connect timed out" }
        if rc < 0 { return String(cString: strerror(errno)) }
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err == 0 ? nil : String(cString: strerror(err))
    }

    static func connectUnix(path: String) throws(BackendFailure) -> BackendConnection {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        let bytes = Array(path.utf8)
        guard bytes.count < capacity else { throw BackendFailure(description: "unix:\(path): path too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            dst.copyBytes(from: bytes)
            dst[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BackendFailure(description: "unix:\(path): \(String(cString: strerror(errno)))") }
        var rc: Int32
        repeat {
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        } while rc < 0 && errno == EINTR
        if rc < 0 {
            let e = errno
            if e == EINPROGRESS || e == EAGAIN, waitConnected(fd) == nil {
                return BackendConnection(fd: fd)
            }
            Sys.close(fd)
            throw BackendFailure(description: "unix:\(path): \(String(cString: strerror(e == EAGAIN ? ECONNREFUSED : e)))")
        }
        return BackendConnection(fd: fd)
    }

    /// Starts an exec backend as inetd does: stdin and stdout are one end of a
    /// socketpair, stderr a pipe, a new session (so the whole group can be signalled),
    /// default signal dispositions, cwd "/", exactly `environment`, and no other descriptor.
    static func spawn(argv: [String], environment: [String]) throws(BackendFailure) -> BackendConnection {
        guard let program = argv.first else { throw BackendFailure(description: "exec: empty command") }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw BackendFailure(description: "exec \(program): socketpair: \(String(cString: strerror(errno)))")
        }
        var errPipe: [Int32] = [-1, -1]
        guard fived_pipe_cloexec(&errPipe, 0) == 0 else {
            let e = errno
            Sys.close(pair[0]); Sys.close(pair[1])
            throw BackendFailure(description: "exec \(program): pipe: \(String(cString: strerror(e)))")
        }
        defer {
            Sys.close(pair[1])
            Sys.close(errPipe[1])
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pair[1], 0)
        posix_spawn_file_actions_adddup2(&actions, pair[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
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
            Sys.close(pair[0]); Sys.close(errPipe[0])
            throw BackendFailure(description: "exec \(program): \(String(cString: strerror(rc)))")
        }
        let pidFD = fived_pidfd_open(pid)
        if pidFD < 0 {
            // Without a pidfd the exit could not be noticed: do not leave it running.
            let e = errno
            _ = kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            Sys.close(pair[0]); Sys.close(errPipe[0])
            throw BackendFailure(description: "exec \(program): pidfd_open: \(String(cString: strerror(e)))")
        }
        Sys.setCloseOnExec(pidFD)
        do {
            try Sys.setNonBlocking(pair[0])
            try Sys.setNonBlocking(errPipe[0])
        } catch {
            _ = kill(pid, SIGKILL)
        }
        return BackendConnection(fd: pair[0], stderrFD: errPipe[0], pid: pid, pidFD: pidFD)
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

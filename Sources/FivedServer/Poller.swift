import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// Readiness for one worker: an epoll set over SSH sockets, backend streams,
/// exec stderr pipes, pidfds and the wake-up eventfd.
///
/// Why not libssh's shared `ssh_event`: every libssh call that flushes polls the
/// session's whole poll context, and in a context shared by many sessions another
/// session's EOF makes `ssh_handle_packets` mark the *calling* session as failed
/// (session.c:686-689), dropping healthy connections under load. So each session
/// keeps a private `ssh_event` holding only its own socket, and this epoll set says
/// which of them to run: O(ready) per wake-up instead of a poll() over everything.
final class Poller {
    /// What a registration is for; the worker dispatches on it.
    enum Target {
        case wake
        case session(Connection)
        case backend(ServiceChannel)
        case stderr(ServiceChannel)
        case process(ServiceChannel)
        case orphan(BackendConnection)
        case tcpmuxClient(TCPMUXConnection)
        case tcpmuxBackend(TCPMUXConnection)
        case tcpmuxStderr(TCPMUXConnection)
    }

    static let readable = UInt32(EPOLLIN.rawValue)
    static let writable = UInt32(EPOLLOUT.rawValue)
    static let hangup = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue) | UInt32(EPOLLRDHUP.rawValue)

    private let epfd: Int32
    private var targets: [UInt64: (fd: Int32, target: Target)] = [:]
    private var byFD: [Int32: UInt64] = [:]
    private var nextToken: UInt64 = 1
    private var readyEvents = [UInt32](repeating: 0, count: 256)
    private var readyTokens = [UInt64](repeating: 0, count: 256)

    init() throws(SystemError) {
        epfd = fived_epoll_create()
        guard epfd >= 0 else { throw SystemError("epoll_create1", errno: errno) }
    }

    deinit {
        Sys.close(epfd)
    }

    /// Registers `fd` (level-triggered) for `events`; returns the registration's token.
    @discardableResult
    func add(_ fd: Int32, events: UInt32, target: Target) -> UInt64 {
        if let stale = byFD[fd] {
            // The descriptor number was closed behind our back (libssh closes a dead
            // session's socket itself) and reused: forget the old registration.
            targets.removeValue(forKey: stale)
            _ = fived_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0)
        }
        let token = nextToken
        nextToken += 1
        targets[token] = (fd, target)
        byFD[fd] = token
        if fived_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, events, token) != 0 {
            targets.removeValue(forKey: token)
            byFD.removeValue(forKey: fd)
            return 0
        }
        return token
    }

    /// Changes the events of a registration.
    func modify(_ token: UInt64, events: UInt32) {
        guard let entry = targets[token], byFD[entry.fd] == token else { return }
        _ = fived_epoll_ctl(epfd, EPOLL_CTL_MOD, entry.fd, events, token)
    }

    /// A registration as its owner keeps it: the token (0: none) and its events.
    typealias Registration = (token: UInt64, events: UInt32)

    /// Brings `registration` to `events` on `fd`: adds, modifies or removes it.
    func update(_ registration: inout Registration, fd: Int32, events: UInt32, target: @autoclosure () -> Target) {
        guard events != registration.events || (events != 0 && registration.token == 0) else { return }
        if events == 0 {
            remove(registration.token)
            registration = (0, 0)
        } else if registration.token != 0 {
            modify(registration.token, events: events)
            registration.events = events
        } else {
            let token = add(fd, events: events, target: target())
            registration = token == 0 ? (0, 0) : (token, events)
        }
    }

    /// Removes a registration; call before closing its descriptor. A token whose
    /// descriptor number now belongs to another registration only forgets itself.
    func remove(_ token: UInt64) {
        guard token != 0, let entry = targets.removeValue(forKey: token) else { return }
        if byFD[entry.fd] == token {
            byFD.removeValue(forKey: entry.fd)
            _ = fived_epoll_ctl(epfd, EPOLL_CTL_DEL, entry.fd, 0, 0)
        }
    }

    /// Waits up to `timeoutMilliseconds` and calls `body` for each ready registration.
    func wait(timeoutMilliseconds: Int32, _ body: (Target, UInt32) -> Void) {
        let n = readyEvents.withUnsafeMutableBufferPointer { ev in
            readyTokens.withUnsafeMutableBufferPointer { tok in
                fived_epoll_wait(epfd, ev.baseAddress, tok.baseAddress, Int32(ev.count), timeoutMilliseconds)
            }
        }
        guard n > 0 else { return }
        for i in 0..<Int(n) {
            // A registration removed by an earlier handler in this batch is skipped.
            guard let entry = targets[readyTokens[i]] else { continue }
            body(entry.target, readyEvents[i])
        }
    }
}

import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// epoll event bits.
public enum PollEvents {
    public static let readable = UInt32(EPOLLIN.rawValue)
    public static let writable = UInt32(EPOLLOUT.rawValue)
    public static let hangup = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue) | UInt32(EPOLLRDHUP.rawValue)
    /// The peer closed its end entirely.
    public static let hungUp = UInt32(EPOLLHUP.rawValue)
    /// Edge-triggered: reported once per change (new bytes), not while the state lasts.
    public static let edgeTriggered = UInt32(EPOLLET.rawValue)
}

/// A poller registration as its owner keeps it: the token (0: none) and its events.
public struct PollRegistration: Sendable, Equatable {
    public var token: UInt64
    public var events: UInt32
    public static let none = PollRegistration(token: 0, events: 0)
    public init(token: UInt64, events: UInt32) {
        self.token = token
        self.events = events
    }
}

/// Readiness for one event-loop thread: an epoll set (level-triggered) whose
/// registrations carry a `Target` the loop dispatches on. O(ready) per wake-up.
///
/// Registrations are identified by a token, not by descriptor number: a
/// descriptor closed behind the poller's back (libssh closes a dead session's
/// socket itself) and reused is detected and its stale registration forgotten.
public final class Poller<Target> {
    public typealias Registration = PollRegistration

    private let epoll: Descriptor
    private var targets: [UInt64: (fd: Int32, target: Target)] = [:]
    private var byFD: [Int32: UInt64] = [:]
    private var nextToken: UInt64 = 1
    private var readyEvents = [UInt32](repeating: 0, count: 256)
    private var readyTokens = [UInt64](repeating: 0, count: 256)

    public init() throws(SystemError) {
        epoll = Descriptor(try Syscall.retrying("epoll_create1") { fived_epoll_create() })
    }

    /// The epoll descriptor: it polls readable while a registration is ready, so
    /// a thread that waits in poll(2) on other descriptors can wait on this set too.
    public var descriptor: Int32 { epoll.rawValue }

    /// Registers `fd` for `events`; returns the token, 0 when epoll refused it.
    @discardableResult
    public func add(_ fd: Int32, events: UInt32, target: Target) -> UInt64 {
        if let stale = byFD[fd] {
            targets.removeValue(forKey: stale)
            _ = fived_epoll_ctl(epoll.rawValue, EPOLL_CTL_DEL, fd, 0, 0)
        }
        let token = nextToken
        nextToken += 1
        targets[token] = (fd, target)
        byFD[fd] = token
        if fived_epoll_ctl(epoll.rawValue, EPOLL_CTL_ADD, fd, events, token) != 0 {
            targets.removeValue(forKey: token)
            byFD.removeValue(forKey: fd)
            return 0
        }
        return token
    }

    /// Changes the events of a registration.
    public func modify(_ token: UInt64, events: UInt32) {
        guard let entry = targets[token], byFD[entry.fd] == token else { return }
        _ = fived_epoll_ctl(epoll.rawValue, EPOLL_CTL_MOD, entry.fd, events, token)
    }

    /// Brings `registration` to `events` on `fd`: adds, modifies or removes it.
    public func update(_ registration: inout Registration, fd: Int32, events: UInt32, target: @autoclosure () -> Target) {
        guard events != registration.events || (events != 0 && registration.token == 0) else { return }
        if events == 0 {
            remove(registration.token)
            registration = .none
        } else if registration.token != 0 {
            modify(registration.token, events: events)
            registration.events = events
        } else {
            let token = add(fd, events: events, target: target())
            registration = token == 0 ? .none : Registration(token: token, events: events)
        }
    }

    /// Removes a registration (call before closing its descriptor). A token whose
    /// descriptor number now belongs to another registration only forgets itself.
    public func remove(_ token: UInt64) {
        guard token != 0, let entry = targets.removeValue(forKey: token) else { return }
        if byFD[entry.fd] == token {
            byFD.removeValue(forKey: entry.fd)
            _ = fived_epoll_ctl(epoll.rawValue, EPOLL_CTL_DEL, entry.fd, 0, 0)
        }
    }

    /// Removes a registration and resets it to `.none`.
    public func remove(_ registration: inout Registration) {
        remove(registration.token)
        registration = .none
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and calls `body` for each
    /// ready registration; one removed by an earlier call in the same batch is skipped.
    public func wait(timeoutMilliseconds: Int32, _ body: (Target, UInt32) -> Void) {
        let n = readyEvents.withUnsafeMutableBufferPointer { ev in
            readyTokens.withUnsafeMutableBufferPointer { tok in
                fived_epoll_wait(epoll.rawValue, ev.baseAddress, tok.baseAddress, Int32(ev.count), timeoutMilliseconds)
            }
        }
        guard n > 0 else { return }
        for i in 0..<Int(n) {
            guard let entry = targets[readyTokens[i]] else { continue }
            body(entry.target, readyEvents[i])
        }
    }
}

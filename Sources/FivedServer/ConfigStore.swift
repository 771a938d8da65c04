import FivedCore
import FivedSystem
import Synchronization

/// The configuration in force, swapped whole on SIGHUP. Readers take a snapshot
/// per decision, so a reload never changes a decision half-way.
public final class ConfigStore: Sendable {
    private let current: Mutex<Configuration>

    public init(_ configuration: Configuration) {
        current = Mutex(configuration)
    }

    /// The configuration in force now.
    public var snapshot: Configuration {
        current.withLock { $0 }
    }

    /// Replaces the configuration; live connections and channels are untouched.
    public func replace(with configuration: Configuration) {
        current.withLock { $0 = configuration }
    }
}

/// A startup slot taken for one source (see `StartupLimiter`); given back with `release`.
public struct StartupSlot: Sendable, Equatable {
    /// The source it counts against: an IPv4 address or an IPv6 prefix (`StartupSource`).
    public let source: String
}

/// Counts connections that have not authenticated yet, in all and per source
/// (an IPv4 address or an IPv6 prefix), for `max_startups` and
/// `max_startups_per_source`. A slot given back wakes whoever waits for one
/// (the acceptor, through `wake`), when somebody does.
public final class StartupLimiter: Sendable {
    private struct State {
        var total = 0
        var perSource: [String: Int] = [:]
    }
    private let state = Mutex(State())
    /// Polls readable after a slot was given back while `hasWaiters`.
    public let wake: Descriptor?
    private let waiters = Atomic<Bool>(false)

    /// A limiter; with `wakes`, it signals an eventfd (`wake`) when a slot frees while someone waits.
    public init(wakes: Bool = false) {
        wake = wakes ? try? Syscall.eventFD() : nil
    }

    /// Whether connections wait for a slot (the acceptor says so).
    public var hasWaiters: Bool {
        get { waiters.load(ordering: .relaxed) }
        set { waiters.store(newValue, ordering: .relaxed) }
    }

    /// Takes a slot for `source` (a `StartupSource` key) if the limits allow; nil means it must wait or go.
    public func admit(source: String, limits: Limits) -> StartupSlot? {
        state.withLock { s in
            guard s.total < limits.maxStartups, s.perSource[source, default: 0] < limits.maxStartupsPerSource else {
                return nil
            }
            s.total += 1
            s.perSource[source, default: 0] += 1
            return StartupSlot(source: source)
        }
    }

    /// Gives back a slot taken by `admit` (on authentication or disconnect).
    public func release(_ slot: StartupSlot) {
        state.withLock { s in
            s.total = max(0, s.total - 1)
            if let n = s.perSource[slot.source] {
                if n <= 1 { s.perSource.removeValue(forKey: slot.source) } else { s.perSource[slot.source] = n - 1 }
            }
        }
        if let wake, hasWaiters { Syscall.signalEvent(wake.rawValue) }
    }

    /// Unauthenticated connections now (for status and tests).
    public var inFlight: Int { state.withLock { $0.total } }
}

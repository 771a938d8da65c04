import FivedCore
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

/// Counts connections that have not authenticated yet, in all and per source
/// address, for `max_startups` and `max_startups_per_source`.
public final class StartupLimiter: Sendable {
    private struct State {
        var total = 0
        var perSource: [String: Int] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// Takes a slot for `source` if the limits allow; false means drop the connection.
    public func admit(source: String, limits: Limits) -> Bool {
        state.withLock { s in
            guard s.total < limits.maxStartups, s.perSource[source, default: 0] < limits.maxStartupsPerSource else {
                return false
            }
            s.total += 1
            s.perSource[source, default: 0] += 1
            return true
        }
    }

    /// Returns the slot taken by `admit` (on authentication or disconnect).
    public func release(source: String) {
        state.withLock { s in
            s.total = max(0, s.total - 1)
            if let n = s.perSource[source] {
                if n <= 1 { s.perSource.removeValue(forKey: source) } else { s.perSource[source] = n - 1 }
            }
        }
    }

    /// Unauthenticated connections now (for status and tests).
    public var inFlight: Int { state.withLock { $0.total } }
}

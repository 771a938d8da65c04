import FivedCore
import Synchronization

/// What each key holds of fived right now, across every worker:
/// authenticated connections and open channels, for `max_connections_per_key`
/// and `max_channels_per_key` (one leaked laptop key cannot take all of fived).
final class KeyUsage: Sendable {
    private struct Held {
        var connections = 0
        var channels = 0
    }
    private let table = Mutex<[String: Held]>([:])

    /// Counts a connection for `key` (a fingerprint) unless it already has `limit`; false when full.
    func takeConnection(_ key: String, limit: Int) -> Bool { take(\.connections, of: key, limit: limit) }

    func releaseConnection(_ key: String) { release(\.connections, of: key) }

    /// Counts a channel for `key` unless it already has `limit`; false when full.
    func takeChannel(_ key: String, limit: Int) -> Bool { take(\.channels, of: key, limit: limit) }

    func releaseChannel(_ key: String) { release(\.channels, of: key) }

    private func take(_ count: WritableKeyPath<Held, Int>, of key: String, limit: Int) -> Bool {
        table.withLock { t in
            guard t[key, default: Held()][keyPath: count] < limit else { return false }
            t[key, default: Held()][keyPath: count] += 1
            return true
        }
    }

    /// One less of `count` for `key`; a key that holds nothing leaves the table.
    private func release(_ count: WritableKeyPath<Held, Int>, of key: String) {
        table.withLock { t in
            guard var held = t[key] else { return }
            held[keyPath: count] -= 1
            if held.connections <= 0 && held.channels <= 0 { t.removeValue(forKey: key) } else { t[key] = held }
        }
    }
}

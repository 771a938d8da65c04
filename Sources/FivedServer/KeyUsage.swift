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
    func takeConnection(_ key: String, limit: Int) -> Bool {
        table.withLock { t in
            guard t[key, default: Held()].connections < limit else { return false }
            t[key, default: Held()].connections += 1
            return true
        }
    }

    func releaseConnection(_ key: String) {
        table.withLock { t in release(&t, key) { $0.connections -= 1 } }
    }

    /// Counts a channel for `key` unless it already has `limit`; false when full.
    func takeChannel(_ key: String, limit: Int) -> Bool {
        table.withLock { t in
            guard t[key, default: Held()].channels < limit else { return false }
            t[key, default: Held()].channels += 1
            return true
        }
    }

    func releaseChannel(_ key: String) {
        table.withLock { t in release(&t, key) { $0.channels -= 1 } }
    }

    private func release(_ t: inout [String: Held], _ key: String, _ change: (inout Held) -> Void) {
        guard var held = t[key] else { return }
        change(&held)
        if held.connections <= 0 && held.channels <= 0 { t.removeValue(forKey: key) } else { t[key] = held }
    }
}

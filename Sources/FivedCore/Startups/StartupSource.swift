/// What `max_startups_per_source` counts by: one IPv4 address, or one IPv6
/// prefix of `max_startups_per_source_prefix6` bits (sshd's PerSourceNetBlockSize),
/// so that the many addresses of one IPv6 host or network count as one source.
public enum StartupSource {
    /// The source key of `address` (numeric text): "192.0.2.7", or "2001:db8:1:2::/64".
    /// IPv4-mapped IPv6 counts as IPv4. Text that is not an address is its own key.
    public static func key(_ address: String, prefix6: Int) -> String {
        guard let ip = IPAddress(address) else { return address }
        switch ip {
        case .v4:
            return ip.description
        case .v6(let bytes):
            let bits = max(0, min(128, prefix6))
            var masked = bytes
            for i in 0..<16 {
                let keep = max(0, min(8, bits - i * 8))
                masked[i] &= keep == 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
            }
            return "\(IPAddress.v6(masked))/\(bits)"
        }
    }
}

/// Connections accepted while every startup slot they could take is in use:
/// they wait, unanswered (no SSH banner yet), for a slot instead of being
/// dropped, so a burst from one address (an office behind one NAT, a CI fleet)
/// is served in turn. Slots go to waiting sources in turn (round robin), so one
/// source's flood never keeps another out, and the queue is bounded by count,
/// in all and per source, and by age (`login_grace_seconds`).
///
/// Pure bookkeeping: `Entry` is whatever the acceptor keeps (a socket and its
/// addresses); times are milliseconds on a monotonic clock.
public struct StartupQueue<Entry> {
    /// Connections waiting at most, in all and from one source.
    public private(set) var capacity: Int
    public private(set) var capacityPerSource: Int
    private var waiting: [String: [(entry: Entry, since: Int64)]] = [:]
    private var turn: [String] = []
    public private(set) var count = 0

    /// A queue for `limits`: four times `max_startups` in all, eight times
    /// `max_startups_per_source` from one source.
    public init(limits: Limits) {
        self.init(capacity: limits.maxStartups * 4, capacityPerSource: limits.maxStartupsPerSource * 8)
    }

    public init(capacity: Int, capacityPerSource: Int) {
        self.capacity = capacity
        self.capacityPerSource = capacityPerSource
    }

    public var isEmpty: Bool { count == 0 }

    /// New bounds after a reload; what waits already stays.
    public mutating func resize(limits: Limits) {
        capacity = limits.maxStartups * 4
        capacityPerSource = limits.maxStartupsPerSource * 8
    }

    /// Queues `entry` from `source` at `now`; false (and nothing queued) when full.
    public mutating func enqueue(_ entry: Entry, source: String, now: Int64) -> Bool {
        guard count < capacity, waiting[source, default: []].count < capacityPerSource else { return false }
        if waiting[source] == nil { turn.append(source) }
        waiting[source, default: []].append((entry, now))
        count += 1
        return true
    }

    /// Hands out waiting entries in turn, one source after another, for as long
    /// as `admit` takes them (it takes a startup slot for that source, or says
    /// no); a source that `admit` refused keeps its place for the next round.
    public mutating func admit(_ admit: (String) -> Bool) -> [Entry] {
        var admitted: [Entry] = []
        var progress = true
        while progress && count > 0 {
            progress = false
            for source in turn {
                guard var queue = waiting[source], !queue.isEmpty, admit(source) else { continue }
                admitted.append(queue.removeFirst().entry)
                count -= 1
                progress = true
                if queue.isEmpty {
                    waiting.removeValue(forKey: source)
                } else {
                    waiting[source] = queue
                }
            }
            // A source whose turn came goes to the back.
            turn.removeAll { waiting[$0] == nil }
        }
        return admitted
    }

    /// Removes and returns the entries that have waited `maximumWait` ms or more.
    public mutating func expire(now: Int64, maximumWait: Int64) -> [Entry] {
        var expired: [Entry] = []
        for (source, queue) in waiting {
            let (old, young) = (queue.filter { now - $0.since >= maximumWait }, queue.filter { now - $0.since < maximumWait })
            guard !old.isEmpty else { continue }
            expired += old.map(\.entry)
            count -= old.count
            waiting[source] = young.isEmpty ? nil : young
        }
        turn.removeAll { waiting[$0] == nil }
        return expired
    }

    /// When the oldest waiting entry expires (ms), or nil when none waits.
    public func nextExpiry(maximumWait: Int64) -> Int64? {
        waiting.values.compactMap { $0.first?.since }.min().map { $0 + maximumWait }
    }

    /// Removes and returns everything (fived is stopping).
    public mutating func removeAll() -> [Entry] {
        defer {
            waiting.removeAll()
            turn.removeAll()
            count = 0
        }
        return turn.flatMap { waiting[$0]?.map(\.entry) ?? [] }
    }
}

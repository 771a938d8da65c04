/// What the built-in `status` service shows: a picture of the daemon at one
/// moment, gathered from every worker, and its rendering as aligned text tables.
/// A value with no I/O, so the layout is tested without sockets.
public struct StatusReport: Sendable, Equatable {
    /// One SSH connection, authenticated or not yet.
    public struct Connection: Sendable, Equatable {
        /// `WORKER.N`: the worker that owns it and its number there.
        public var label: String
        /// The SSH user name; nil before authentication.
        public var user: String?
        /// The key's `SHA256:` fingerprint; nil before authentication.
        public var fingerprint: String?
        /// The client's address and port, as the logs write it.
        public var client: String
        /// Milliseconds since the connection was accepted.
        public var ageMilliseconds: Int64
        /// Its open channels, oldest first.
        public var channels: [Channel]

        /// A connection as a worker saw it.
        public init(label: String, user: String?, fingerprint: String?, client: String, ageMilliseconds: Int64, channels: [Channel]) {
            self.label = label
            self.user = user
            self.fingerprint = fingerprint
            self.client = client
            self.ageMilliseconds = ageMilliseconds
            self.channels = channels
        }
    }

    /// One open channel.
    public struct Channel: Sendable, Equatable {
        /// fived's channel number (the `channel=` of the log lines, the PROXY v2 UNIQUE_ID).
        public var id: UInt64
        /// The service, `help`/`status`, or `-` while a session channel has named none.
        public var service: String
        /// `direct-tcpip`, `exec`, `subsystem`, `shell`, `session` or `forwarded-tcpip`.
        public var form: String
        /// Bytes from the client delivered to the service so far.
        public var bytesIn: Int
        /// Bytes sent to the client so far.
        public var bytesOut: Int
        /// Milliseconds since the channel was opened.
        public var ageMilliseconds: Int64

        /// A channel as its worker saw it.
        public init(id: UInt64, service: String, form: String, bytesIn: Int, bytesOut: Int, ageMilliseconds: Int64) {
            self.id = id
            self.service = service
            self.form = form
            self.bytesIn = bytesIn
            self.bytesOut = bytesOut
            self.ageMilliseconds = ageMilliseconds
        }
    }

    /// One name published with `tcpip-forward`.
    public struct Publication: Sendable, Equatable {
        /// The published name.
        public var name: String
        /// The publishing connection's label (`WORKER.N`), if it is still listed.
        public var connection: String
        /// The publisher's user name and address, when its connection is listed.
        public var user: String?
        public var client: String?

        /// A published name and who holds it.
        public init(name: String, connection: String, user: String?, client: String?) {
            self.name = name
            self.connection = connection
            self.user = user
            self.client = client
        }
    }

    /// When the picture was taken, in seconds since the epoch (UTC).
    public var time: Int64
    /// Worker threads.
    public var workers: Int
    /// Every SSH connection, sorted by label.
    public var connections: [Connection]
    /// Every published name, sorted by name.
    public var publications: [Publication]
    /// Plain TCPMUX connections open now.
    public var tcpmuxConnections: Int
    /// Workers that did not answer in time (their connections are missing).
    public var silentWorkers: [Int]

    /// A picture of the daemon.
    public init(
        time: Int64, workers: Int, connections: [Connection], publications: [Publication],
        tcpmuxConnections: Int = 0, silentWorkers: [Int] = []
    ) {
        self.time = time
        self.workers = workers
        self.connections = connections
        self.publications = publications
        self.tcpmuxConnections = tcpmuxConnections
        self.silentWorkers = silentWorkers
    }

    /// The tables as text ending in a newline: a summary line, then connections,
    /// channels (each naming its connection) and published names.
    public func rendered() -> String {
        let unauthenticated = connections.filter { $0.user == nil }.count
        let channelCount = connections.reduce(0) { $0 + $1.channels.count }
        var lines = [
            "fived status at \(Self.timestamp(time)): \(plural(workers, "worker")), "
                + "\(plural(connections.count, "connection")) (\(unauthenticated) unauthenticated), "
                + "\(plural(channelCount, "channel")), \(plural(publications.count, "published name")), "
                + "\(plural(tcpmuxConnections, "tcpmux connection"))"
        ]
        if !silentWorkers.isEmpty {
            lines.append("note: worker \(silentWorkers.map(String.init).joined(separator: ", ")) did not answer; its connections are missing")
        }

        lines.append("")
        var table = [["CONNECTION", "USER", "KEY", "CLIENT", "SINCE", "AGE", "CHANNELS"]]
        for c in connections {
            table.append([
                c.label, c.user.map { Self.cell($0) } ?? "-", c.fingerprint ?? "(authenticating)", c.client,
                Self.timestamp(time - c.ageMilliseconds / 1000), Self.duration(c.ageMilliseconds), "\(c.channels.count)",
            ])
        }
        lines += Self.aligned(table, empty: "(no connections)")

        lines.append("")
        table = [["CHANNEL", "CONNECTION", "USER", "SERVICE", "FORM", "BYTES_IN", "BYTES_OUT", "AGE"]]
        for c in connections {
            for ch in c.channels {
                table.append([
                    "\(ch.id)", c.label, c.user.map { Self.cell($0) } ?? "-", Self.cell(ch.service), ch.form,
                    "\(ch.bytesIn)", "\(ch.bytesOut)", Self.duration(ch.ageMilliseconds),
                ])
            }
        }
        lines += Self.aligned(table, empty: "(no channels)")

        lines.append("")
        table = [["PUBLISHED", "CONNECTION", "USER", "CLIENT"]]
        for p in publications {
            table.append([Self.cell(p.name), p.connection, p.user.map { Self.cell($0) } ?? "-", p.client ?? "-"])
        }
        lines += Self.aligned(table, empty: "(no published names)")
        return lines.joined(separator: "\n") + "\n"
    }

    private func plural(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }

    /// Client-chosen text (user names) in one cell: control characters escaped,
    /// spaces shown as `\x20` so a column cannot be faked, at most 64 scalars.
    static func cell(_ raw: String) -> String {
        DisplayText.escaped(raw, limit: 64).replacingSpaces()
    }

    /// The table aligned (`DisplayText.aligned`); one with no rows gets `empty` under its header.
    static func aligned(_ table: [[String]], empty: String) -> [String] {
        DisplayText.aligned(table) + (table.count == 1 ? [empty] : [])
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (UTC).
    public static func renderedTimestamp(_ seconds: Int64) -> String { timestamp(seconds) }

    /// A short age for milliseconds: `850ms`, `42s`, `3m07s`, `5h02m`, `2d03h`.
    public static func renderedDuration(_ milliseconds: Int64) -> String { duration(milliseconds) }

    /// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (proleptic Gregorian, UTC).
    static func timestamp(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))Z"
    }

    /// A short age: `850ms`, `42s`, `3m07s`, `5h02m`, `2d03h`.
    static func duration(_ milliseconds: Int64) -> String {
        let ms = max(0, milliseconds)
        if ms < 1000 { return "\(ms)ms" }
        let s = ms / 1000
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(two(s % 60))s" }
        if s < 86_400 { return "\(s / 3600)h\(two(s / 60 % 60))m" }
        return "\(s / 86_400)d\(two(s / 3600 % 24))h"
    }
}

extension String {
    fileprivate func replacingSpaces() -> String {
        guard contains(" ") else { return self }
        return split(separator: " ", omittingEmptySubsequences: false).joined(separator: "\\x20")
    }
}

/// The fleet part of the built-in `status` table: the registry's state and one
/// row per peer this node relays to. A value with no I/O.
public struct FleetStatus: Sendable, Equatable {
    /// One peer node this node has relayed (or tried to relay) channels to.
    public struct Peer: Sendable, Equatable {
        public var node: String
        /// `up`, `connecting`, `down` or `idle`.
        public var state: String
        /// The address dialed (`HOST:PORT`), or `-`.
        public var address: String
        /// Relayed channels open now, and relayed since the start.
        public var channelsOpen: Int
        public var channelsTotal: Int
        /// Bytes relayed to the peer and from it, over finished channels.
        public var bytesOut: Int
        public var bytesIn: Int
        /// The last failure, or empty.
        public var lastError: String

        public init(
            node: String, state: String, address: String = "-", channelsOpen: Int = 0, channelsTotal: Int = 0,
            bytesOut: Int = 0, bytesIn: Int = 0, lastError: String = ""
        ) {
            self.node = node
            self.state = state
            self.address = address
            self.channelsOpen = channelsOpen
            self.channelsTotal = channelsTotal
            self.bytesOut = bytesOut
            self.bytesIn = bytesIn
            self.lastError = lastError
        }
    }

    public var node: String
    public var registryLive: Bool
    public var registryReason: String
    public var names: Int
    public var nodes: Int
    public var peers: [Peer]

    public init(node: String, registryLive: Bool, registryReason: String, names: Int, nodes: Int, peers: [Peer]) {
        self.node = node
        self.registryLive = registryLive
        self.registryReason = registryReason
        self.names = names
        self.nodes = nodes
        self.peers = peers
    }

    /// Text ending in a newline: a registry line, then the peers table.
    public func rendered() -> String {
        var lines = [""]
        if registryLive {
            lines.append("fleet: node \(node), registry live, \(names) names, \(nodes) nodes")
        } else {
            lines.append("fleet: node \(node), registry UNREACHABLE (\(registryReason)): remote names refused")
        }
        let header = ["PEER", "STATE", "ADDRESS", "OPEN", "RELAYED", "BYTES_OUT", "BYTES_IN", "LAST_ERROR"]
        let rows = peers.sorted { $0.node < $1.node }.map { p in
            [
                p.node, p.state, p.address, String(p.channelsOpen), String(p.channelsTotal), String(p.bytesOut), String(p.bytesIn),
                p.lastError.isEmpty ? "-" : p.lastError,
            ]
        }
        if rows.isEmpty {
            lines.append("peers: (none yet)")
        } else {
            lines += DisplayText.aligned([header] + rows)
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

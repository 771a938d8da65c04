import Foundation

/// Where the fleet keeps what in etcd, under the configured prefix P:
///
///     P names/NAME  ->  NameRecord (JSON)   one per registered name, on its owner's lease
///     P nodes/NODE  ->  NodeRecord (JSON)   one per live node, on its lease
///
/// NAME is a service name as fived compares it (lower case): `web.host7` for an
/// exported service, the bare name for a published one.
public enum RegistryLayout {
    private static let names = "names/"
    private static let nodes = "nodes/"

    public static func nameKey(prefix: String, _ name: ServiceName) -> String { prefix + names + name.value }
    public static func nodeKey(prefix: String, _ node: NodeName) -> String { prefix + nodes + node.value }

    /// What a key under `prefix` names: a registered name, a node, or nothing fived wrote.
    public enum Entry: Equatable, Sendable {
        case name(ServiceName)
        case node(NodeName)
    }

    public static func entry(forKey key: String, prefix: String) -> Entry? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        if rest.hasPrefix(names), let name = ServiceName(rest.dropFirst(names.count)) { return .name(name) }
        if rest.hasPrefix(nodes), let node = NodeName(rest.dropFirst(nodes.count)) { return .node(node) }
        return nil
    }

    /// The fleet name of service `name` exported by `node`: `NAME.NODE`, or nil
    /// when it would be longer than a service name may be.
    public static func exportedName(_ name: ServiceName, node: NodeName) -> ServiceName? {
        ServiceName(name.value + "." + node.value)
    }

    /// Splits `NAME.NODE` at its last dot: the service and the node, or nil.
    public static func split(_ name: ServiceName) -> (service: ServiceName, node: NodeName)? {
        guard let dot = name.value.lastIndex(of: ".") else { return nil }
        guard let service = ServiceName(name.value[..<dot]), let node = NodeName(name.value[name.value.index(after: dot)...]) else {
            return nil
        }
        return (service, node)
    }
}

/// The value of `P names/NAME`: which node owns the name, how, and (for an
/// exported service) its allow list, so every node's `help` can show only what a
/// caller may open. The owner node checks the allow list again on every open.
public struct NameRecord: Codable, Equatable, Sendable {
    /// How a node came to own a name.
    public enum Kind: String, Codable, Sendable {
        /// A configured service with `export = true`.
        case export
        /// A name a client published with `tcpip-forward`.
        case publish
    }

    public var node: String
    public var kind: Kind
    /// The allow list as the config file spells it; nil: every key.
    public var allow: [String]?

    public init(node: NodeName, kind: Kind, allow: [AllowRule]?) {
        self.node = node.value
        self.kind = kind
        self.allow = allow?.map(\.description)
    }

    /// The owner, validated.
    public var owner: NodeName? { NodeName(node) }

    /// The allow list, parsed (entries that do not parse are dropped, so they admit nobody).
    public var allowRules: [AllowRule]? {
        allow.map { $0.compactMap { try? AllowRule(parsing: $0, context: "registry") } }
    }

    public var json: [UInt8] { Array((try? JSONEncoder().encode(self)) ?? Data()) }

    public static func decode(_ bytes: [UInt8]) throws(FivedCoreError) -> NameRecord {
        guard bytes.count <= 65536, let record = try? JSONDecoder().decode(NameRecord.self, from: Data(bytes)), record.owner != nil else {
            throw FivedCoreError(.registryRecordMalformed, "name record is not JSON with a valid node")
        }
        return record
    }
}

/// The value of `P nodes/NODE`: where a live node listens for its peers and
/// which host keys it presents there (the entry node checks them before it
/// relays anything).
public struct NodeRecord: Codable, Equatable, Sendable {
    /// `HOST:PORT` of its SSH listener.
    public var advertise: String
    /// `SHA256:` fingerprints of its host keys.
    public var hostKeys: [String]
    /// `SHA256:` fingerprint of its node key (a restart with the same key may take the record over).
    public var nodeKey: String
    /// Its lease, as etcd's decimal id.
    public var lease: String

    public init(advertise: String, hostKeys: [String], nodeKey: String, lease: Int64) {
        self.advertise = advertise
        self.hostKeys = hostKeys
        self.nodeKey = nodeKey
        self.lease = String(lease)
    }

    public var json: [UInt8] { Array((try? JSONEncoder().encode(self)) ?? Data()) }

    public static func decode(_ bytes: [UInt8]) throws(FivedCoreError) -> NodeRecord {
        guard bytes.count <= 65536, let record = try? JSONDecoder().decode(NodeRecord.self, from: Data(bytes)) else {
            throw FivedCoreError(.registryRecordMalformed, "node record is not JSON")
        }
        return record
    }
}

/// A name another node owns, as the entry node needs it to relay a channel.
public struct RemoteName: Equatable, Sendable {
    public var name: ServiceName
    public var owner: NodeName
    public var kind: NameRecord.Kind
    public var allow: [AllowRule]?

    public init(name: ServiceName, owner: NodeName, kind: NameRecord.Kind, allow: [AllowRule]?) {
        self.name = name
        self.owner = owner
        self.kind = kind
        self.allow = allow
    }
}

/// What this node knows of the registry at one moment: whether it is in touch
/// with etcd, every registered name and every live node. Workers read it whole
/// (`Registry.snapshot`); the registry thread replaces it.
public struct RegistrySnapshot: Sendable, Equatable {
    /// True while the registry is in touch with etcd (watch open, lease kept).
    public var live: Bool
    /// Why it is not live, for refusals and `status`.
    public var reason: String
    public var names: [ServiceName: NameRecord]
    public var nodes: [NodeName: NodeRecord]

    public init(
        live: Bool = false, reason: String = "not connected to etcd yet", names: [ServiceName: NameRecord] = [:],
        nodes: [NodeName: NodeRecord] = [:]
    ) {
        self.live = live
        self.reason = reason
        self.names = names
        self.nodes = nodes
    }

    /// How a name resolves for a caller on node `me`.
    public enum Resolution: Equatable, Sendable {
        /// Owned by this node (or not registered at all): the local tables decide.
        case local
        /// Owned by a live node elsewhere.
        case remote(RemoteName, NodeRecord)
        /// Possibly remote, but the registry cannot say now.
        case unavailable(String)
    }

    /// Resolves `name` for node `me`. A name registered by another node whose
    /// node record is gone is refused as unavailable (the node is going away).
    /// While the registry is not live, names that look like `NAME.NODE` of
    /// another node, and names the last snapshot placed elsewhere, are unavailable.
    public func resolve(_ name: ServiceName, me: NodeName) -> Resolution {
        if !live {
            if let record = names[name], record.node != me.value { return .unavailable(reason) }
            if let (_, node) = RegistryLayout.split(name), node != me { return .unavailable(reason) }
            return .local
        }
        guard let record = names[name], let owner = record.owner, owner != me else { return .local }
        guard let node = nodes[owner] else { return .unavailable("node \(owner) has no live record") }
        return .remote(RemoteName(name: name, owner: owner, kind: record.kind, allow: record.allowRules), node)
    }

    /// The names other nodes own, with their allow lists (for `help`).
    public func remoteNames(me: NodeName) -> [RemoteName] {
        guard live else { return [] }
        return names.compactMap { name, record in
            guard let owner = record.owner, owner != me, nodes[owner] != nil else { return nil }
            return RemoteName(name: name, owner: owner, kind: record.kind, allow: record.allowRules)
        }.sorted { $0.name < $1.name }
    }
}

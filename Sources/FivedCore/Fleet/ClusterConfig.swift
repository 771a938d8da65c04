/// The optional `[cluster]` table (SPEC.md, "Fleet"): this node's name, where the
/// shared name registry (etcd) is, the lease that keeps this node's names alive,
/// and how nodes authenticate one another. Without the table fived is one host
/// and none of this exists.
public struct ClusterConfig: Sendable, Equatable {
    /// `node_name`: this node's name, the `NODE` of `NAME.NODE`: 1 to 32 letters,
    /// digits, `_` or `-` (no `.`), compared without case. Required.
    public var nodeName: NodeName
    /// `etcd_endpoints`: etcd v3 client URLs (`http://HOST:PORT` or `https://...`),
    /// tried in order. Required, at least one.
    public var etcdEndpoints: [String]
    /// `prefix`: the etcd key prefix every node of this fleet uses; starts and ends
    /// with `/`. Default `/fived/`.
    public var prefix: String
    /// `lease_seconds`: the TTL of this node's lease, in seconds. A node that dies
    /// loses its names this long after its last keepalive. Default 10, 2 to 300.
    public var leaseSeconds: Int
    /// `node_key`: this node's private key, with which it logs in to its peers
    /// (generated, Ed25519, mode 0600, when missing). Default
    /// /var/lib/fived/node_ed25519_key.
    public var nodeKey: String
    /// `peers_authorized_keys`: the node keys of the peers that may relay callers
    /// to this node, in authorized_keys format (options are not honoured). Read on
    /// every peer login. Default /etc/fived/peers_authorized_keys.
    public var peersAuthorizedKeys: String
    /// `advertise`: `HOST:PORT` where the other nodes reach this node's SSH
    /// listener. nil: the first listener's bound address (which must then not be
    /// a wildcard address).
    public var advertise: String?

    /// `lease_seconds`'s accepted values.
    public static let leaseRange = 2...300
    public static let defaultPrefix = "/fived/"
    public static let defaultLeaseSeconds = 10
    public static let defaultNodeKey = "/var/lib/fived/node_ed25519_key"
    public static let defaultPeersAuthorizedKeys = "/etc/fived/peers_authorized_keys"
    /// The keys of the table, as the config file spells them.
    public static let keys = ["node_name", "etcd_endpoints", "prefix", "lease_seconds", "node_key", "peers_authorized_keys", "advertise"]

    /// A cluster table; everything but the name and the endpoints has a default.
    public init(
        nodeName: NodeName, etcdEndpoints: [String], prefix: String = defaultPrefix, leaseSeconds: Int = defaultLeaseSeconds,
        nodeKey: String = defaultNodeKey, peersAuthorizedKeys: String = defaultPeersAuthorizedKeys, advertise: String? = nil
    ) {
        self.nodeName = nodeName
        self.etcdEndpoints = etcdEndpoints
        self.prefix = prefix
        self.leaseSeconds = leaseSeconds
        self.nodeKey = nodeKey
        self.peersAuthorizedKeys = peersAuthorizedKeys
        self.advertise = advertise
    }

    /// Checks one `etcd_endpoints` entry: `http://` or `https://`, then
    /// `HOST:PORT` (IPv6 in brackets), nothing after but an optional `/`.
    public static func checkedEndpoint(_ raw: String, context: String) throws(FivedCoreError) -> String {
        let scheme = raw.hasPrefix("http://") ? "http://" : raw.hasPrefix("https://") ? "https://" : nil
        guard let scheme else {
            throw FivedCoreError(
                .configInvalidValue, "\(context): '\(DisplayText.escaped(raw))' is not an etcd client URL: use http://HOST:PORT")
        }
        var rest = Substring(raw.dropFirst(scheme.count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        _ = try HostPort.parse(rest, allowPortZero: false, code: .configInvalidValue, context: context, example: "127.0.0.1:2379")
        return scheme + rest
    }

    /// Checks `prefix`: starts and ends with `/`, 2 to 128 printable ASCII characters.
    public static func checkedPrefix(_ raw: String, context: String) throws(FivedCoreError) -> String {
        guard raw.count >= 2, raw.count <= 128, raw.hasPrefix("/"), raw.hasSuffix("/"),
            raw.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else {
            throw FivedCoreError(
                .configInvalidValue,
                "\(context): '\(DisplayText.escaped(raw))' must start and end with '/' and hold only printable ASCII, e.g. /fived/")
        }
        return raw
    }

    /// Checks `advertise`: `HOST:PORT`, port 1 to 65535, not a wildcard address.
    public static func checkedAdvertise(_ raw: String, context: String) throws(FivedCoreError) -> String {
        let (host, _) = try HostPort.parse(raw, allowPortZero: false, code: .configInvalidValue, context: context, example: "10.0.0.7:1")
        guard host != "0.0.0.0", host != "::" else {
            throw FivedCoreError(
                .configInvalidValue, "\(context): '\(DisplayText.escaped(raw))' is a wildcard address: give one the other nodes can reach")
        }
        return raw
    }

    /// The lines `fived --check` prints for the table.
    public var summary: [String] {
        [
            "cluster: node_name=\(nodeName) prefix=\(prefix) lease_seconds=\(leaseSeconds)",
            "cluster etcd_endpoints: " + etcdEndpoints.map { DisplayText.escaped($0) }.joined(separator: ", "),
            "cluster node_key: \(DisplayText.escaped(nodeKey))",
            "cluster peers_authorized_keys: \(DisplayText.escaped(peersAuthorizedKeys))",
            "cluster advertise: " + (advertise.map { DisplayText.escaped($0) } ?? "(the first listener's bound address)"),
        ]
    }
}

/// A node's name in a fleet: 1 to 32 letters, digits, `_` or `-`, stored lower-cased.
/// It is the last label of `NAME.NODE`, so it never holds a dot.
public struct NodeName: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The canonical (lower-case) spelling.
    public let value: String
    /// The longest node name, in bytes.
    public static let maximumLength = 32

    /// Validates `raw`; nil when it is not a node name.
    public init?(_ raw: some StringProtocol) {
        let bytes = raw.utf8
        guard !bytes.isEmpty, bytes.count <= Self.maximumLength,
            bytes.allSatisfy({ b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2D
            })
        else { return nil }
        value = String(raw).lowercased()
    }

    /// Validates `raw`, with an error naming `context` and the form expected.
    public init(validating raw: some StringProtocol, context: String) throws(FivedCoreError) {
        guard let name = NodeName(raw) else {
            throw FivedCoreError(
                .configInvalidValue,
                "\(context): invalid node name '\(ServiceName.printable(raw))': use 1 to 32 letters, digits, '_' or '-' (no '.')")
        }
        self = name
    }

    public var description: String { value }
    public static func < (lhs: NodeName, rhs: NodeName) -> Bool { lhs.value < rhs.value }
}

/// The `[limits]` table: how much one caller, or all callers together, may hold
/// of fived. Every value is at least 1 and at most a bound that still makes sense
/// (see `range(ofKey:)`); the loader rejects anything else, naming the key.
public struct Limits: Sendable, Equatable {
    /// `login_grace_seconds`: time a connection has to authenticate before it is
    /// closed, as sshd's LoginGraceTime. Default 30, from 1 to 3600.
    public var loginGraceSeconds = 30
    /// `max_startups`: unauthenticated connections at once, from all addresses
    /// together; more are closed at once. Default 256, from 1 to 65536.
    public var maxStartups = 256
    /// `max_startups_per_source`: unauthenticated connections at once from one
    /// address. Default 16, from 1 to 65536 and at most `max_startups`.
    public var maxStartupsPerSource = 16
    /// `max_startups_per_source_prefix6`: IPv6 clients count toward
    /// `max_startups_per_source` by this prefix length, as sshd's
    /// PerSourceNetBlockSize (one /64 is one household or one host's privacy
    /// addresses). IPv4 clients count by address. Default 64, from 1 to 128.
    public var maxStartupsPerSourcePrefix6 = 64
    /// `max_channels_per_connection`: channels open at once on one SSH connection;
    /// more are refused. Default 1024, from 1 to 65536.
    public var maxChannelsPerConnection = 1024
    /// `max_connections_per_key`: authenticated connections at once for one key
    /// (one leaked laptop key cannot take all of fived); further logins with
    /// that key are refused. Default 256, from 1 to 65536.
    public var maxConnectionsPerKey = 256
    /// `max_channels_per_key`: channels open at once, across all connections,
    /// for one key; more are refused. Default 4096, from 1 to 1048576.
    public var maxChannelsPerKey = 4096
    /// `connect_timeout_seconds`: how long a backend connect may take before the
    /// channel is refused; it never holds up other channels. A service's own
    /// `connect_timeout_seconds` overrides it. Default 10, from 1 to 300.
    public var connectTimeoutSeconds = 10

    /// The defaults SPEC.md gives.
    public init() {}

    /// Limits with the given values; check them with `validate(context:)` if they come from a user.
    public init(
        loginGraceSeconds: Int = 30, maxStartups: Int = 256, maxStartupsPerSource: Int = 16,
        maxChannelsPerConnection: Int = 1024, maxStartupsPerSourcePrefix6: Int = 64, maxConnectionsPerKey: Int = 256,
        maxChannelsPerKey: Int = 4096, connectTimeoutSeconds: Int = 10
    ) {
        self.loginGraceSeconds = loginGraceSeconds
        self.maxStartups = maxStartups
        self.maxStartupsPerSource = maxStartupsPerSource
        self.maxChannelsPerConnection = maxChannelsPerConnection
        self.maxStartupsPerSourcePrefix6 = maxStartupsPerSourcePrefix6
        self.maxConnectionsPerKey = maxConnectionsPerKey
        self.maxChannelsPerKey = maxChannelsPerKey
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    /// The config keys of the `[limits]` table, in the order SPEC.md lists them.
    public static let keys = [
        "login_grace_seconds", "max_startups", "max_startups_per_source", "max_startups_per_source_prefix6",
        "max_channels_per_connection", "max_connections_per_key", "max_channels_per_key", "connect_timeout_seconds",
    ]

    /// The values accepted for `key` (a name from `keys`); nil for an unknown key.
    public static func range(ofKey key: String) -> ClosedRange<Int>? {
        switch key {
        case "login_grace_seconds": return 1...3600
        case "max_startups", "max_startups_per_source", "max_channels_per_connection", "max_connections_per_key": return 1...65536
        case "max_startups_per_source_prefix6": return 1...128
        case "max_channels_per_key": return 1...1_048_576
        case "connect_timeout_seconds": return 1...300
        default: return nil
        }
    }

    private static let paths: [String: WritableKeyPath<Limits, Int> & Sendable] = [
        "login_grace_seconds": \.loginGraceSeconds,
        "max_startups": \.maxStartups,
        "max_startups_per_source": \.maxStartupsPerSource,
        "max_startups_per_source_prefix6": \.maxStartupsPerSourcePrefix6,
        "max_channels_per_connection": \.maxChannelsPerConnection,
        "max_connections_per_key": \.maxConnectionsPerKey,
        "max_channels_per_key": \.maxChannelsPerKey,
        "connect_timeout_seconds": \.connectTimeoutSeconds,
    ]

    /// The value of config key `key`, or nil for an unknown key.
    public subscript(key key: String) -> Int? {
        get { Self.paths[key].map { self[keyPath: $0] } }
        set {
            guard let newValue, let path = Self.paths[key] else { return }
            self[keyPath: path] = newValue
        }
    }

    /// Checks every value against its range and `max_startups_per_source` against
    /// `max_startups`. `context` says where the values came from ("fived.toml");
    /// `locate` may give a more precise place for a key ("fived.toml:9"), or nil.
    public func validate(context: String, locate: (String) -> String? = { _ in nil }) throws(FivedCoreError) {
        for key in Self.keys {
            let value = self[key: key]!
            let range = Self.range(ofKey: key)!
            guard range.contains(value) else {
                throw FivedCoreError(
                    .configInvalidValue,
                    "\(locate(key) ?? context): limits.\(key): \(value) is out of range: use \(range.lowerBound) to \(range.upperBound)")
            }
        }
        guard maxStartupsPerSource <= maxStartups else {
            throw FivedCoreError(
                .configInvalidValue,
                "\(locate("max_startups_per_source") ?? locate("max_startups") ?? context): limits.max_startups_per_source: \(maxStartupsPerSource) is more than max_startups (\(maxStartups))"
            )
        }
    }
}

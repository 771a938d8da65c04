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
    /// `max_channels_per_connection`: channels open at once on one SSH connection;
    /// more are refused. Default 1024, from 1 to 65536.
    public var maxChannelsPerConnection = 1024

    /// The defaults SPEC.md gives.
    public init() {}

    /// Limits with the given values; check them with `validate(context:)` if they come from a user.
    public init(
        loginGraceSeconds: Int = 30, maxStartups: Int = 256, maxStartupsPerSource: Int = 16,
        maxChannelsPerConnection: Int = 1024
    ) {
        self.loginGraceSeconds = loginGraceSeconds
        self.maxStartups = maxStartups
        self.maxStartupsPerSource = maxStartupsPerSource
        self.maxChannelsPerConnection = maxChannelsPerConnection
    }

    /// The config keys of the `[limits]` table, in the order SPEC.md lists them.
    public static let keys = [
        "login_grace_seconds", "max_startups", "max_startups_per_source", "max_channels_per_connection",
    ]

    /// The values accepted for `key` (a name from `keys`); nil for an unknown key.
    public static func range(ofKey key: String) -> ClosedRange<Int>? {
        switch key {
        case "login_grace_seconds": return 1...3600
        case "max_startups", "max_startups_per_source", "max_channels_per_connection": return 1...65536
        default: return nil
        }
    }

    /// The value of config key `key`, or nil for an unknown key.
    public subscript(key key: String) -> Int? {
        get {
            switch key {
            case "login_grace_seconds": return loginGraceSeconds
            case "max_startups": return maxStartups
            case "max_startups_per_source": return maxStartupsPerSource
            case "max_channels_per_connection": return maxChannelsPerConnection
            default: return nil
            }
        }
        set {
            guard let newValue else { return }
            switch key {
            case "login_grace_seconds": loginGraceSeconds = newValue
            case "max_startups": maxStartups = newValue
            case "max_startups_per_source": maxStartupsPerSource = newValue
            case "max_channels_per_connection": maxChannelsPerConnection = newValue
            default: break
            }
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
                "\(locate("max_startups_per_source") ?? locate("max_startups") ?? context): limits.max_startups_per_source: \(maxStartupsPerSource) is more than max_startups (\(maxStartups))")
        }
    }
}

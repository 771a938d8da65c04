/// One `[services.NAME]` table or `--service NAME=BACKEND` flag: a name callers
/// open and the backend that serves it.
public struct ServiceConfig: Sendable, Equatable {
    /// The table's name, `NAME` in `[services.NAME]`; compared without case.
    public var name: ServiceName
    /// `connect` ("HOST:PORT", "tcp:HOST:PORT", "unix:/PATH") or `exec` (an argv array).
    public var backend: Backend
    /// `proxy_protocol`: send a PROXY v2 header naming the caller before any data. Default false.
    public var proxyProtocol: Bool
    /// `allow`: key comments, `SHA256:` fingerprints or `user:NAME` entries that may
    /// open the service. nil (no `allow` key) lets every authorized key open it;
    /// an empty list lets nobody.
    public var allow: [AllowRule]?
    /// `tcpmux`: also offer the service on the plain, unauthenticated TCPMUX listeners. Default false.
    public var tcpmux: Bool
    /// `connect_timeout_seconds`: this backend's connect timeout; nil uses
    /// `[limits]`'s. From 1 to 300.
    public var connectTimeoutSeconds: Int?
    /// `export`: in a fleet, registered as `NAME.NODE` so callers on every node
    /// reach it (its `allow` list still applies, here). Default false; needs `[cluster]`.
    public var export = false
    /// Where the service was defined: the config file's path, or "--service".
    public var origin: String

    /// The `origin` of a service given on the command line.
    public static let flagOrigin = "--service"

    /// A service; only the name and backend have no default.
    public init(
        name: ServiceName, backend: Backend, proxyProtocol: Bool = false, allow: [AllowRule]? = nil,
        tcpmux: Bool = false, origin: String
    ) {
        self.name = name
        self.backend = backend
        self.proxyProtocol = proxyProtocol
        self.allow = allow
        self.tcpmux = tcpmux
        self.origin = origin
    }
}

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
    /// `pty` (exec services only): grant a client's `pty-req` and run the program
    /// on a pseudo-terminal (RFC 4254 §6.2), for REPLs, consoles and TUIs. Default false.
    public var pty = false
    /// `user` (exec services): the account the program runs as, a name or a
    /// number; nil runs it as fived's own user, which is refused when fived runs
    /// as root (`ServiceAccounts.check`).
    public var user: String?
    /// `group` (exec services): the primary group, a name or a number; nil takes
    /// the user's from the password database.
    public var group: String?
    /// `working_directory` (exec services): an absolute path; nil is the user's home.
    public var workingDirectory: String?
    /// `umask` (exec services): the file mode creation mask. Default 0o077.
    public var umask: UInt16 = 0o077
    /// `instances` (exec services): processes of this service at once; nil, no limit.
    public var instances: Int?
    /// `per_source` (exec services): processes of this service at once for one client address; nil, no limit.
    public var perSource: Int?
    /// `[services.NAME.limits]` (exec services): resource limits set in the child before exec.
    public var processLimits = ProcessLimits()
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

/// `[services.NAME.limits]`: setrlimit(2) values applied, soft and hard, in an
/// exec service's child before exec; nil leaves fived's own.
public struct ProcessLimits: Sendable, Equatable {
    /// RLIMIT_NOFILE: open descriptors.
    public var nofile: Int?
    /// RLIMIT_NPROC: processes of the service's user (a fork bomb stops here).
    public var nproc: Int?
    /// RLIMIT_AS: address space, in bytes.
    public var asBytes: Int?
    /// RLIMIT_CPU: CPU time, in seconds.
    public var cpuSeconds: Int?

    public init(nofile: Int? = nil, nproc: Int? = nil, asBytes: Int? = nil, cpuSeconds: Int? = nil) {
        self.nofile = nofile
        self.nproc = nproc
        self.asBytes = asBytes
        self.cpuSeconds = cpuSeconds
    }

    /// The keys of the table and each one's range.
    public static let keys: [(key: String, range: ClosedRange<Int>)] = [
        ("nofile", 4...1_048_576), ("nproc", 1...1_048_576), ("as_bytes", 16 << 20...(1 << 50)), ("cpu_seconds", 1...(1 << 30)),
    ]

    public var isEmpty: Bool { self == ProcessLimits() }

    /// The value of `key` (one of `keys`).
    public subscript(key key: String) -> Int? {
        get {
            switch key {
            case "nofile": return nofile
            case "nproc": return nproc
            case "as_bytes": return asBytes
            case "cpu_seconds": return cpuSeconds
            default: return nil
            }
        }
        set {
            switch key {
            case "nofile": nofile = newValue
            case "nproc": nproc = newValue
            case "as_bytes": asBytes = newValue
            case "cpu_seconds": cpuSeconds = newValue
            default: break
            }
        }
    }
}

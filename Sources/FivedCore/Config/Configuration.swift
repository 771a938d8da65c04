/// Everything fived runs with: the config file and the command line merged and
/// checked. Built by `ConfigurationLoader`; SIGHUP builds a new one.
public struct Configuration: Sendable, Equatable {
    /// `listen`, `--listen`: the SSH listeners. Default 0.0.0.0:1 and [::]:1 (port 1 is TCPMUX's).
    public var listen: [ListenAddress]
    /// `host_keys`, `--host-key`: private host key files; a missing one is generated.
    /// Default /etc/fived/ssh_host_ed25519_key.
    public var hostKeys: [String]
    /// `authorized_keys`, `--authorized-keys`: OpenSSH authorized_keys files, read on
    /// every authentication; `%u` (user), `%h` (home) and `%%` expand as in sshd's
    /// AuthorizedKeysFile, and a relative path is taken from the user's home.
    /// Default %h/.ssh/authorized_keys.
    public var authorizedKeys: [String]
    /// `tcpmux`, `--tcpmux`: plain RFC 1078 listeners, no authentication. Default none.
    public var tcpmux: [ListenAddress]
    /// `tcpmux_on_ssh_port`: the SSH listeners answer RFC 1078 TCPMUX clients too,
    /// on the same port. A client whose first bytes are `SSH-` speaks SSH, one that
    /// sends anything else gets the TCPMUX listener's service (`tcpmux = true`
    /// services only), and one that sends nothing for a second gets the SSH
    /// identification string (`SharedPortOpening`). Default false. Read for each
    /// new connection, so a reload changes it for the connections that follow.
    public var tcpmuxOnSSHPort = false
    /// `log_level`, `--log-level`. Default info.
    public var logLevel: LogLevel
    /// `log_format`: `text` (one `TIMESTAMP LEVEL MESSAGE key=value` line per
    /// event) or `json` (one JSON object per line). Default text. Like the log
    /// level, it takes effect at start, not on reload.
    public var logFormat: LogFormat = .text
    /// `[limits]`.
    public var limits: Limits
    /// `[services.NAME]` and `--service NAME=BACKEND`, by name; never `help`, `status` or `metrics`.
    public var services: [ServiceName: ServiceConfig]
    /// `allow` of `[services.status]`: who may open the built-in status table.
    /// Default empty: nobody.
    public var statusAllow: [AllowRule]
    /// `allow` of `[services.metrics]`: who may open the built-in Prometheus
    /// endpoint (the `metrics` service). Default empty: nobody.
    public var metricsAllow: [AllowRule] = []
    /// `metrics_listen`: a loopback `HOST:PORT` where fived also serves its
    /// Prometheus text over plain HTTP (no authentication, hence loopback only);
    /// nil (the file's `""`, the default): none. Taken at start, not on reload.
    public var metricsListen: ListenAddress?
    /// `client_alive_interval_seconds`: after this long without a packet from a
    /// client, fived sends it a keepalive (a `keepalive@openssh.com` global
    /// request wanting a reply), as sshd's ClientAliveInterval; 0 turns it off.
    /// Default 15, from 0 to 3600.
    public var clientAliveIntervalSeconds = 15
    /// `client_alive_count_max`: keepalives left unanswered before the connection
    /// is dropped (about interval × count seconds of silence), as sshd's
    /// ClientAliveCountMax. Default 3, from 1 to 100.
    public var clientAliveCountMax = 3

    /// The accepted values of `client_alive_interval_seconds` and `client_alive_count_max`.
    public static let clientAliveIntervalRange = 0...3600
    public static let clientAliveCountRange = 1...100
    /// `trusted_user_ca_keys`: absolute paths of files of CA public keys whose user
    /// certificates are accepted for every user (sshd's TrustedUserCAKeys), one
    /// `TYPE BASE64 [COMMENT]` per line (`TrustedCAKeysParser`). Default none.
    public var trustedUserCAKeys: [String]
    /// `authorized_principals_file`: with `trusted_user_ca_keys`, the file listing
    /// the certificate principals that may log in as the user (sshd's
    /// AuthorizedPrincipalsFile; `AuthorizedPrincipalsParser`). `%u`, `%h` and `%%`
    /// expand as in `authorized_keys`; a relative path is taken from the user's
    /// home. nil (the file's `""`): the SSH user name must be a principal.
    public var authorizedPrincipalsFile: String?
    /// `revoked_keys`: absolute paths of OpenSSH KRLs or public key lists whose
    /// keys and certificates are refused (sshd's RevokedKeys; `RevokedKeys`). A
    /// file that cannot be read or parsed refuses every key. Default none.
    public var revokedKeys: [String]
    /// `authorized_keys_command`: a program printing authorized_keys lines for the
    /// user (sshd's AuthorizedKeysCommand): an absolute path and arguments split
    /// on spaces, with the tokens `%u` (user), `%h` (home), `%t` (key type),
    /// `%f` (key fingerprint), `%k` (key, base64) and `%%`. nil (`""`): none.
    public var authorizedKeysCommand: String?
    /// `authorized_keys_command_user`: the user `authorized_keys_command` runs as;
    /// required with it (sshd refuses to start without one). nil (`""`): none.
    public var authorizedKeysCommandUser: String?
    /// `host_certificates`: host certificate files (`-cert.pub`) to present beside
    /// the matching `host_keys` (sshd's HostCertificate). Default none.
    public var hostCertificates: [String]
    /// `daemon_user`: the account the network-facing daemon runs as after it has
    /// bound its listeners and loaded its host keys, when started as root; nil
    /// means `nobody`. Ignored when fived is not started as root.
    public var daemonUser: String?
    /// `[cluster]`: this node's place in a fleet sharing one name registry (etcd);
    /// nil (no table): fived is one host, exactly as without the fleet.
    public var cluster: ClusterConfig?

    /// SSH listeners used when neither the file nor the flags name any.
    public static let defaultListen = [ListenAddress(host: "0.0.0.0", port: 1), ListenAddress(host: "::", port: 1)]
    /// Host keys used when neither the file nor the flags name any.
    public static let defaultHostKeys = ["/etc/fived/ssh_host_ed25519_key"]
    /// authorized_keys files used when neither the file nor the flags name any (as sshd).
    public static let defaultAuthorizedKeys = ["%h/.ssh/authorized_keys"]

    /// A configuration; every list defaults to empty, so use `withDefaults()` (or
    /// `ConfigurationLoader.load`) for the one fived would run with.
    public init(
        listen: [ListenAddress] = [], hostKeys: [String] = [], authorizedKeys: [String] = [],
        tcpmux: [ListenAddress] = [], logLevel: LogLevel = .info, limits: Limits = Limits(),
        services: [ServiceName: ServiceConfig] = [:], statusAllow: [AllowRule] = [],
        trustedUserCAKeys: [String] = [], authorizedPrincipalsFile: String? = nil, revokedKeys: [String] = [],
        authorizedKeysCommand: String? = nil, authorizedKeysCommandUser: String? = nil, hostCertificates: [String] = []
    ) {
        self.listen = listen
        self.hostKeys = hostKeys
        self.authorizedKeys = authorizedKeys
        self.tcpmux = tcpmux
        self.logLevel = logLevel
        self.limits = limits
        self.services = services
        self.statusAllow = statusAllow
        self.trustedUserCAKeys = trustedUserCAKeys
        self.authorizedPrincipalsFile = authorizedPrincipalsFile
        self.revokedKeys = revokedKeys
        self.authorizedKeysCommand = authorizedKeysCommand
        self.authorizedKeysCommandUser = authorizedKeysCommandUser
        self.hostCertificates = hostCertificates
    }

    /// This configuration with the default listeners, host keys and authorized_keys
    /// files in place of empty lists.
    public func withDefaults() -> Configuration {
        var c = self
        if c.listen.isEmpty { c.listen = Self.defaultListen }
        if c.hostKeys.isEmpty { c.hostKeys = Self.defaultHostKeys }
        if c.authorizedKeys.isEmpty { c.authorizedKeys = Self.defaultAuthorizedKeys }
        return c
    }

    /// How long a connect to `service`'s backend may take, in ms: its own
    /// `connect_timeout_seconds`, else `[limits]`'s.
    public func connectTimeoutMilliseconds(for service: ServiceConfig) -> Int64 {
        Int64(service.connectTimeoutSeconds ?? limits.connectTimeoutSeconds) * 1000
    }

    /// The services sorted by name, as `help` and `--check` list them.
    public var sortedServices: [ServiceConfig] {
        services.values.sorted { $0.name < $1.name }
    }
}

/// What the command line said, before any checking: the flags that add to or
/// override the config file. Everything is optional.
public struct ConfigurationOverrides: Sendable {
    /// `--config FILE`: the TOML file to read; nil reads none.
    public var configFile: String?
    /// `--listen HOST:PORT`, in order; appended to the file's `listen`.
    public var listen: [String]
    /// `--host-key FILE`, in order; appended to the file's `host_keys`.
    public var hostKeys: [String]
    /// `--authorized-keys FILE`, in order; appended to the file's `authorized_keys`.
    public var authorizedKeys: [String]
    /// `--service NAME=BACKEND`, in order; replaces a file service of the same name.
    public var services: [String]
    /// `--tcpmux HOST:PORT`, in order; appended to the file's `tcpmux`.
    public var tcpmux: [String]
    /// `--log-level LEVEL`; wins over the file's `log_level`.
    public var logLevel: String?

    /// Overrides; each defaults to "not given".
    public init(
        configFile: String? = nil, listen: [String] = [], hostKeys: [String] = [], authorizedKeys: [String] = [],
        services: [String] = [], tcpmux: [String] = [], logLevel: String? = nil
    ) {
        self.configFile = configFile
        self.listen = listen
        self.hostKeys = hostKeys
        self.authorizedKeys = authorizedKeys
        self.services = services
        self.tcpmux = tcpmux
        self.logLevel = logLevel
    }
}

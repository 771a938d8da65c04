/// Builds the `Configuration` fived runs with from the config file and the
/// command line (SPEC.md, "fived: command line" and "fived: config file").
/// Every bad input is one `FivedCoreError` whose message names the file and line,
/// the key or the flag concerned.
public enum ConfigurationLoader {
    /// Reads the file (if any), parses it, applies the overrides, validates.
    ///
    /// Flags add to the file: `--listen`, `--host-key`, `--authorized-keys` and
    /// `--tcpmux` append to its lists (a repeated address or path counts once);
    /// `--service NAME=BACKEND` replaces the file's service of that name;
    /// `--log-level` wins over `log_level`. The default listeners, host key and
    /// authorized_keys file apply only when neither file nor flags name any.
    ///
    /// The only I/O is reading the config file and asking `isExecutable` whether each
    /// exec program can be run.
    public static func load(
        _ overrides: ConfigurationOverrides,
        isExecutable: (String) -> Bool = ConfigurationLoader.defaultIsExecutable
    ) throws(FivedCoreError) -> Configuration {
        var config = Configuration()
        var file: ConfigFileParser? = nil
        if let path = overrides.configFile {
            let text = try ConfigFileReader.readText(path)
            var parser = ConfigFileParser(text: text, file: path)
            config = try parser.parse()
            file = parser
        }
        let fileTCPMUXCount = config.tcpmux.count

        for raw in overrides.listen {
            config.listen.append(try ListenAddress(parsing: raw, context: "--listen"))
        }
        for raw in overrides.tcpmux {
            config.tcpmux.append(try ListenAddress(parsing: raw, context: "--tcpmux"))
        }
        for raw in overrides.hostKeys {
            config.hostKeys.append(try checkedHostKeyPath(raw, context: "--host-key"))
        }
        for raw in overrides.authorizedKeys {
            config.authorizedKeys.append(try checkedAuthorizedKeysPath(raw, context: "--authorized-keys"))
        }
        var fromFlags: Set<ServiceName> = []
        for raw in overrides.services {
            let service = try serviceFlag(raw)
            guard fromFlags.insert(service.name).inserted else {
                throw FivedCoreError(.invalidFlag, "--service \(service.name): given twice")
            }
            config.services[service.name] = service
        }
        if let raw = overrides.logLevel {
            config.logLevel = try LogLevel(parsing: raw, context: "--log-level", code: .invalidFlag)
        }

        config.listen = uniqued(config.listen)
        config.tcpmux = uniqued(config.tcpmux)
        config.hostKeys = uniqued(config.hostKeys)
        config.authorizedKeys = uniqued(config.authorizedKeys)
        config = config.withDefaults()

        for (i, plain) in config.tcpmux.enumerated() {
            guard let ssh = config.listen.first(where: { overlaps($0, plain) }) else { continue }
            let whence = i < fileTCPMUXCount ? (file?.context(["tcpmux"]) ?? "tcpmux") : "--tcpmux"
            let fix =
                config.tcpmuxOnSSHPort
                ? "tcpmux_on_ssh_port = true already answers TCPMUX there: remove it from tcpmux"
                : "give the TCPMUX listener another port, or set tcpmux_on_ssh_port = true to answer TCPMUX on the SSH port"
            throw FivedCoreError(.invalidListenAddress, "\(whence): \(plain) would share a port with the SSH listener \(ssh): \(fix)")
        }

        if let metrics = config.metricsListen,
            let taken = (config.listen + config.tcpmux).first(where: { overlaps($0, metrics) })
        {
            throw FivedCoreError(
                .invalidListenAddress,
                "\(file?.context(["metrics_listen"]) ?? "metrics_listen"): \(metrics) would share a port with the listener \(taken): give metrics_listen another port"
            )
        }

        for service in config.sortedServices {
            guard case .exec(let argv) = service.backend, !isExecutable(argv[0]) else { continue }
            let whence: String
            if service.origin == ServiceConfig.flagOrigin {
                whence = "--service \(service.name)"
            } else {
                let spelled = file?.spellings[service.name] ?? service.name.value
                whence = file?.context(["services", spelled, "exec"]) ?? service.origin
            }
            throw FivedCoreError(
                .invalidBackend, "\(whence): program \(DisplayText.escaped(argv[0])) does not exist or is not executable")
        }
        return config
    }

    /// Parses the text of a config file; `file` names it in messages. The lists are
    /// exactly what the file gives (no defaults yet) and exec programs are not
    /// looked at: `load` does both.
    public static func parse(toml: String, file: String) throws(FivedCoreError) -> Configuration {
        var parser = ConfigFileParser(text: toml, file: file)
        return try parser.parse()
    }

    /// The real check behind `load`: `path` is a regular file this process may execute.
    public static func defaultIsExecutable(_ path: String) -> Bool {
        ConfigFileReader.isExecutable(path)
    }

    /// Parses one `--service NAME=BACKEND`.
    static func serviceFlag(_ raw: String) throws(FivedCoreError) -> ServiceConfig {
        guard let equals = raw.firstIndex(of: "=") else {
            throw FivedCoreError(
                .invalidFlag,
                "--service '\(DisplayText.escaped(raw))': expected NAME=BACKEND, e.g. web=tcp:127.0.0.1:8080")
        }
        let name = try ServiceName(validating: raw[..<equals], context: "--service")
        let context = "--service \(name)"
        if name == .help {
            throw FivedCoreError(
                .invalidServiceName, "\(context): 'help' is reserved: fived answers it with the list of services")
        }
        if name == .status {
            throw FivedCoreError(
                .invalidServiceName,
                "\(context): 'status' is the built-in status table: set who may open it with allow in [services.status] of the config file")
        }
        if name == .metrics {
            throw FivedCoreError(
                .invalidServiceName,
                "\(context): 'metrics' is the built-in Prometheus endpoint: set who may open it with allow in [services.metrics] of the config file")
        }
        let backend = try Backend(flagValue: String(raw[raw.index(after: equals)...]), context: context)
        return ServiceConfig(name: name, backend: backend, origin: ServiceConfig.flagOrigin)
    }

    /// Checks a host key file name: not empty, no NUL.
    static func checkedHostKeyPath(_ raw: String, context: String) throws(FivedCoreError) -> String {
        guard !raw.isEmpty, !raw.utf8.contains(0) else {
            throw FivedCoreError(.configInvalidValue, "\(context): '\(DisplayText.escaped(raw))' is not a file name")
        }
        return raw
    }

    /// Checks an authorized_keys file name: not empty, no NUL, and `%` only in the
    /// tokens sshd's AuthorizedKeysFile knows and SPEC.md keeps: `%h`, `%u`, `%%`.
    static func checkedAuthorizedKeysPath(_ raw: String, context: String) throws(FivedCoreError) -> String {
        let path = try checkedHostKeyPath(raw, context: context)
        try checkPercentTokens(path, allowed: "hu%", context: context, use: "%h (home), %u (user) or %% (a percent sign)")
        return path
    }

    /// Throws at the first `%` in `text` not followed by one of `allowed` (a lone
    /// trailing `%` included), naming it and saying which tokens to `use`.
    private static func checkPercentTokens(_ text: String, allowed: String, context: String, use: String) throws(FivedCoreError) {
        var i = text.startIndex
        while let percent = text[i...].firstIndex(of: "%") {
            let next = text.index(after: percent)
            guard next < text.endIndex, allowed.contains(text[next]) else {
                let token = next < text.endIndex ? "%\(text[next])" : "%"
                throw FivedCoreError(
                    .configInvalidValue, "\(context): '\(DisplayText.escaped(text))' has '\(DisplayText.escaped(token))': use \(use)")
            }
            i = text.index(after: next)
        }
    }

    /// Checks a server-wide file read at authentication (`trusted_user_ca_keys`,
    /// `revoked_keys`): an absolute path, no NUL; `%` tokens are not expanded
    /// there (as in sshd's TrustedUserCAKeys and RevokedKeys), so they are refused.
    static func checkedServerFilePath(_ raw: String, context: String) throws(FivedCoreError) -> String {
        let path = try checkedHostKeyPath(raw, context: context)
        guard !path.contains("%") else {
            throw FivedCoreError(
                .configInvalidValue,
                "\(context): '\(DisplayText.escaped(path))': %-tokens are not expanded here, the file is the same for every user")
        }
        guard path.hasPrefix("/") else {
            throw FivedCoreError(.configInvalidValue, "\(context): '\(DisplayText.escaped(path))' is not an absolute path")
        }
        return path
    }

    /// Checks `authorized_keys_command`: no NUL or line break, an absolute program
    /// path first, and `%` only in the tokens SPEC.md names: `%u %h %t %f %k %%`.
    static func checkedAuthorizedKeysCommand(_ raw: String, context: String) throws(FivedCoreError) -> String {
        guard !raw.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) else {
            throw FivedCoreError(.configInvalidValue, "\(context): '\(DisplayText.escaped(raw))' contains a NUL or line break")
        }
        guard raw.hasPrefix("/") else {
            throw FivedCoreError(
                .configInvalidValue, "\(context): '\(DisplayText.escaped(raw))' must start with the program's absolute path")
        }
        try checkPercentTokens(
            raw, allowed: "uhtfk%", context: context, use: "%u (user), %h (home), %t (key type), %f (fingerprint), %k (key) or %%")
        return raw
    }

    /// Checks a user name given in the configuration: not empty, no NUL, blank,
    /// `:` or `/` (none of which a passwd entry's name holds).
    static func checkedUserName(_ raw: String, context: String) throws(FivedCoreError) -> String {
        guard !raw.isEmpty, !raw.unicodeScalars.contains(where: { $0.value <= 0x20 || $0 == ":" || $0 == "/" || $0.value == 0x7F }) else {
            throw FivedCoreError(.configInvalidValue, "\(context): '\(DisplayText.escaped(raw))' is not a user name")
        }
        return raw
    }

    /// True when binding both addresses would collide: the same address and port,
    /// or the same port with one the wildcard of the other's family.
    static func overlaps(_ a: ListenAddress, _ b: ListenAddress) -> Bool {
        guard a.port == b.port, a.port != 0 else { return false }
        if a.host == b.host { return true }
        let v4 = { (h: String) in HostPort.isIPv4(Substring(h)) }
        let v6 = { (h: String) in h.contains(":") }
        return (a.host == "0.0.0.0" && v4(b.host)) || (b.host == "0.0.0.0" && v4(a.host))
            || (a.host == "::" && v6(b.host)) || (b.host == "::" && v6(a.host))
    }

    private static func uniqued<T: Hashable>(_ list: [T]) -> [T] {
        var seen: Set<T> = []
        return list.filter { seen.insert($0).inserted }
    }
}

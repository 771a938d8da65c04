import TOMLKit

/// Turns the text of a fived.toml into a `Configuration`, rejecting unknown keys,
/// wrong types and bad values with a message that names the file, the line (when
/// `TOMLKeyLocator` finds it) and the key: "fived.toml:12: services.web.connect: ...".
/// List defaults are not applied here and exec programs are not looked at:
/// `ConfigurationLoader` does both after merging the flags.
struct ConfigFileParser {
    /// The file name used in messages.
    let file: String
    private let text: String
    private let locator: TOMLKeyLocator
    /// Each service's name as the file spells it, to find its lines again later.
    private(set) var spellings: [ServiceName: String] = [:]

    /// Top-level keys (SPEC.md, config file).
    static let topLevelKeys = [
        "listen", "host_keys", "authorized_keys", "tcpmux", "tcpmux_on_ssh_port", "log_level", "log_format", "client_alive_interval_seconds",
        "client_alive_count_max", "limits", "services",
        "trusted_user_ca_keys", "authorized_principals_file", "revoked_keys", "authorized_keys_command",
        "authorized_keys_command_user", "host_certificates", "daemon_user", "cluster", "metrics_listen",
    ]
    /// Keys of a `[services.NAME]` table.
    static let serviceKeys = [
        "connect", "exec", "proxy_protocol", "allow", "tcpmux", "connect_timeout_seconds", "pty", "user", "group",
        "working_directory", "umask", "instances", "per_source", "limits", "export",
    ]
    /// Service keys that only an exec service takes.
    static let execOnlyKeys = ["pty", "user", "group", "working_directory", "umask", "instances", "per_source", "limits"]
    /// Keys of the `[services.status]` table: only who may see the built-in table.
    static let statusKeys = ["allow"]

    init(text: String, file: String) {
        self.file = file
        self.text = text
        self.locator = TOMLKeyLocator(text: text)
    }

    /// Parses the text this parser was made for.
    mutating func parse() throws(FivedCoreError) -> Configuration {
        // TOMLKit hands the text to C as a C string: a NUL would silently end the file there.
        if let nul = text.utf8.firstIndex(of: 0) {
            let line = text.utf8[..<nul].count(where: { $0 == 0x0A }) + 1
            throw FivedCoreError(.configSyntax, "\(file):\(line): TOML syntax error: NUL character in the file")
        }
        // toml++ aborts the process on some invalid TOML instead of throwing.
        if let bad = TOMLAbortGuard.firstAbort(in: text) {
            throw FivedCoreError(
                .configSyntax,
                "\(file):\(bad.line): TOML syntax error: \(bad.expected), saw '\(ServiceName.printable(bad.found))' (column \(bad.column))")
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            // toml++ may quote the offending text: keep the message one printable line.
            var why = ""
            for scalar in error.description.unicodeScalars {
                why.unicodeScalars.append(scalar.value < 0x20 || scalar.value == 0x7F ? " " : scalar)
            }
            throw FivedCoreError(
                .configSyntax,
                "\(file):\(error.source.begin.line): TOML syntax error: \(why) (column \(error.source.begin.column))")
        } catch {
            throw FivedCoreError(.configSyntax, "\(file): TOML syntax error: \(error)")
        }
        return try configuration(from: root)
    }

    private mutating func configuration(from root: TOMLTable) throws(FivedCoreError) -> Configuration {
        try checkKeys(root, at: [], allowed: Self.topLevelKeys)
        var config = Configuration()
        for (key, value) in root {
            let path = [key]
            switch key {
            case "listen":
                config.listen += try each(value, at: path, ListenAddress.init(parsing:context:))
            case "tcpmux":
                config.tcpmux += try each(value, at: path, ListenAddress.init(parsing:context:))
            case "tcpmux_on_ssh_port":
                config.tcpmuxOnSSHPort = try bool(value, at: path)
            case "host_keys":
                config.hostKeys += try each(value, at: path, ConfigurationLoader.checkedHostKeyPath)
            case "authorized_keys":
                config.authorizedKeys += try each(value, at: path, ConfigurationLoader.checkedAuthorizedKeysPath)
            case "trusted_user_ca_keys", "revoked_keys":
                let checked = try each(value, at: path, ConfigurationLoader.checkedServerFilePath)
                if key == "revoked_keys" { config.revokedKeys += checked } else { config.trustedUserCAKeys += checked }
            case "host_certificates":
                config.hostCertificates += try each(value, at: path, ConfigurationLoader.checkedHostKeyPath)
            case "authorized_principals_file":
                config.authorizedPrincipalsFile = try unlessEmpty(value, at: path, ConfigurationLoader.checkedAuthorizedKeysPath)
            case "authorized_keys_command":
                config.authorizedKeysCommand = try unlessEmpty(value, at: path, ConfigurationLoader.checkedAuthorizedKeysCommand)
            case "authorized_keys_command_user":
                config.authorizedKeysCommandUser = try unlessEmpty(value, at: path, ConfigurationLoader.checkedUserName)
            case "metrics_listen":
                config.metricsListen = try unlessEmpty(value, at: path, ListenAddress.init(metricsParsing:context:))
            case "daemon_user":
                config.daemonUser = try unlessEmpty(value, at: path, ConfigurationLoader.checkedUserName)
            case "log_level":
                config.logLevel = try LogLevel(parsing: string(value, at: path), context: context(path))
            case "log_format":
                config.logFormat = try LogFormat(parsing: string(value, at: path), context: context(path))
            case "client_alive_interval_seconds":
                config.clientAliveIntervalSeconds = try int(value, at: path, in: Configuration.clientAliveIntervalRange)
            case "client_alive_count_max":
                config.clientAliveCountMax = try int(value, at: path, in: Configuration.clientAliveCountRange)
            case "limits":
                config.limits = try limits(table(value, at: path))
            case "services":
                try services(table(value, at: path), into: &config)
            case "cluster":
                config.cluster = try cluster(table(value, at: path))
            default:
                break  // checkKeys has rejected it
            }
        }
        if config.authorizedKeysCommand != nil, config.authorizedKeysCommandUser == nil {
            throw error(
                .configInvalidValue, ["authorized_keys_command"],
                "needs authorized_keys_command_user, the user to run it as (as sshd's AuthorizedKeysCommandUser)")
        }
        try checkExports(config)
        return config
    }

    private func limits(_ table: TOMLTable) throws(FivedCoreError) -> Limits {
        try checkKeys(table, at: ["limits"], allowed: Limits.keys)
        var limits = Limits()
        for (key, value) in table {
            limits[key: key] = try int(value, at: ["limits", key])
        }
        try limits.validate(context: file, locate: { key in locator.line(of: ["limits", key]).map { "\(file):\($0)" } })
        return limits
    }

    private mutating func services(_ table: TOMLTable, into config: inout Configuration) throws(FivedCoreError) {
        for (rawName, value) in table {
            let path = ["services", rawName]
            let name = try ServiceName(validating: rawName, context: location(path))
            if let earlier = spellings[name] {
                throw FivedCoreError(
                    .configInvalidValue,
                    "\(location(path)): services '\(DisplayText.escaped(earlier))' and '\(rawName)' differ only by case, and service names are compared without case"
                )
            }
            spellings[name] = rawName
            let body = try self.table(value, at: path)
            if name == .status {
                config.statusAllow = try statusAllow(body, at: path)
            } else if name == .metrics {
                config.metricsAllow = try builtInAllow(body, at: path, what: "the built-in Prometheus endpoint")
            } else if name == .help {
                throw FivedCoreError(
                    .invalidServiceName,
                    "\(location(path)): \(Self.render(path)): 'help' is reserved: fived answers it with the list of services the caller may open")
            } else {
                config.services[name] = try service(name, body, at: path)
            }
        }
    }

    private func statusAllow(_ table: TOMLTable, at path: [String]) throws(FivedCoreError) -> [AllowRule] {
        try builtInAllow(table, at: path, what: "the built-in status table")
    }

    /// The table of a built-in service (`status`, `metrics`): only `allow`.
    private func builtInAllow(_ table: TOMLTable, at path: [String], what: String) throws(FivedCoreError) -> [AllowRule] {
        for key in table.keys where Self.serviceKeys.contains(key) && !Self.statusKeys.contains(key) {
            throw error(
                .configInvalidValue, path + [key],
                "'\(path.last ?? "")' is \(what): its table takes only 'allow'")
        }
        try checkKeys(table, at: path, allowed: Self.statusKeys)
        guard let allow = table["allow"] else { return [] }
        return try each(allow, at: path + ["allow"], AllowRule.init(parsing:context:))
    }

    private func service(_ name: ServiceName, _ table: TOMLTable, at path: [String]) throws(FivedCoreError)
        -> ServiceConfig
    {
        try checkKeys(table, at: path, allowed: Self.serviceKeys)
        let backend: Backend
        switch (table["connect"], table["exec"]) {
        case (let connect?, nil):
            backend = try connectBackend(string(connect, at: path + ["connect"]), context: context(path + ["connect"]))
        case (nil, let exec?):
            let argv = try strings(exec, at: path + ["exec"])
            backend = .exec(argv: try Backend.checkedArgv(argv, context: context(path + ["exec"])))
        case (nil, nil):
            throw error(.configInvalidValue, path, "has neither 'connect' nor 'exec': a service needs exactly one")
        case (.some, .some):
            throw error(.configInvalidValue, path, "has both 'connect' and 'exec': a service needs exactly one")
        }
        var service = ServiceConfig(name: name, backend: backend, origin: file)
        if let value = table["proxy_protocol"] { service.proxyProtocol = try bool(value, at: path + ["proxy_protocol"]) }
        if let value = table["tcpmux"] { service.tcpmux = try bool(value, at: path + ["tcpmux"]) }
        if let value = table["allow"] { service.allow = try each(value, at: path + ["allow"], AllowRule.init(parsing:context:)) }
        if !backend.isExec, let key = Self.execOnlyKeys.first(where: { table[$0] != nil }) {
            throw error(.configInvalidValue, path + [key], "only an exec service takes '\(key)': remove it or use 'exec'")
        }
        if let value = table["pty"] { service.pty = try bool(value, at: path + ["pty"]) }
        if let value = table["user"] {
            service.user = try ConfigurationLoader.checkedUserName(string(value, at: path + ["user"]), context: context(path + ["user"]))
        }
        if let value = table["group"] {
            service.group = try ConfigurationLoader.checkedUserName(string(value, at: path + ["group"]), context: context(path + ["group"]))
        }
        if let value = table["working_directory"] {
            let raw = try string(value, at: path + ["working_directory"])
            guard raw.hasPrefix("/"), !raw.utf8.contains(0) else {
                throw error(.configInvalidValue, path + ["working_directory"], "'\(DisplayText.escaped(raw))' is not an absolute path")
            }
            service.workingDirectory = raw
        }
        if let value = table["umask"] { service.umask = try umask(value, at: path + ["umask"]) }
        if let value = table["instances"] { service.instances = try int(value, at: path + ["instances"], in: 1...65535) }
        if let value = table["per_source"] { service.perSource = try int(value, at: path + ["per_source"], in: 1...65535) }
        if let value = table["limits"] {
            let limitsPath = path + ["limits"]
            let limitsTable = try self.table(value, at: limitsPath)
            try checkKeys(limitsTable, at: limitsPath, allowed: ProcessLimits.keys.map(\.key))
            for (key, range) in ProcessLimits.keys {
                if let v = limitsTable[key] { service.processLimits[key: key] = try int(v, at: limitsPath + [key], in: range) }
            }
        }
        if let value = table["export"] { service.export = try bool(value, at: path + ["export"]) }
        if let value = table["connect_timeout_seconds"] {
            service.connectTimeoutSeconds = try int(value, at: path + ["connect_timeout_seconds"], in: Limits.range(ofKey: "connect_timeout_seconds")!)
        }
        return service
    }

    /// `connect` takes "HOST:PORT", "tcp:HOST:PORT" or "unix:/PATH".
    private func connectBackend(_ raw: String, context: String) throws(FivedCoreError) -> Backend {
        if raw.hasPrefix("tcp:") || raw.hasPrefix("unix:") {
            return try Backend(flagValue: raw, context: context)
        }
        if raw.hasPrefix("exec:") {
            throw FivedCoreError(
                .invalidBackend,
                "\(context): '\(DisplayText.escaped(raw))' is not an address: for a program use exec = [\"/PATH/PROG\", \"ARG\"]")
        }
        if raw.hasPrefix("/") {
            throw FivedCoreError(
                .invalidBackend,
                "\(context): '\(DisplayText.escaped(raw))' is not HOST:PORT: for a Unix socket write unix:\(DisplayText.escaped(raw))")
        }
        return try Backend(flagValue: "tcp:" + raw, context: context)
    }

    // MARK: - Where, for messages

    /// "fived.toml:12" when the line of `path` is known, else "fived.toml".
    func location(_ path: [String]) -> String {
        guard !path.isEmpty, let line = locator.line(of: path) else { return file }
        return "\(file):\(line)"
    }

    /// "fived.toml:12: services.web.allow[2]": the prefix of a message about a value.
    func context(_ path: [String], index: Int? = nil) -> String {
        "\(location(path)): \(Self.render(path))" + (index.map { "[\($0)]" } ?? "")
    }

    func error(_ code: FivedCoreError.Code, _ path: [String], _ text: String) -> FivedCoreError {
        FivedCoreError(code, "\(context(path)): \(text)")
    }

    /// A key path as TOML writes it: bare parts plain, others quoted ("services.\"a b\".connect").
    static func render(_ path: [String]) -> String {
        path.map { part in
            let bare = !part.isEmpty && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
            return bare ? part : "\"\(DisplayText.escaped(part))\""
        }.joined(separator: ".")
    }

    // MARK: - Keys and types

    /// Rejects a key of `table` that is not in `allowed`, suggesting the closest allowed key.
    func checkKeys(_ table: TOMLTable, at path: [String], allowed: [String]) throws(FivedCoreError) {
        for key in table.keys where !allowed.contains(key) {
            var message = "\(location(path + [key])): unknown key '\(Self.render(path + [key]))'"
            if let guess = Self.closest(to: key, in: allowed) { message += " (did you mean '\(guess)'?)" }
            throw FivedCoreError(.configUnknownKey, message)
        }
    }

    /// The allowed key `key` is most likely a typo of: same letters but for case,
    /// or at most two edits away.
    static func closest(to key: String, in allowed: [String]) -> String? {
        let lowered = key.lowercased()
        if let same = allowed.first(where: { $0 == lowered }) { return same }
        let scored = allowed.map { ($0, editDistance(Array(lowered), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2, best.1 < lowered.count else { return nil }
        return best.0
    }

    /// Levenshtein distance: insertions, deletions and substitutions.
    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            previous = current
        }
        return previous[b.count]
    }

    private func mismatch(_ value: TOMLValueConvertible, at path: [String], expected: String) -> FivedCoreError {
        error(.configInvalidValue, path, "must be \(expected), not \(Self.describe(value.type))")
    }

    private static func describe(_ type: TOMLType) -> String {
        switch type {
        case .table: return "a table"
        case .array: return "an array"
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a floating-point number"
        case .bool: return "a boolean"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date-time"
        }
    }

    func string(_ value: TOMLValueConvertible, at path: [String]) throws(FivedCoreError) -> String {
        guard let s = value.string else { throw mismatch(value, at: path, expected: "a string") }
        return s
    }

    func bool(_ value: TOMLValueConvertible, at path: [String]) throws(FivedCoreError) -> Bool {
        guard let b = value.bool else { throw mismatch(value, at: path, expected: "true or false") }
        return b
    }

    func int(_ value: TOMLValueConvertible, at path: [String]) throws(FivedCoreError) -> Int {
        guard let i = value.int else { throw mismatch(value, at: path, expected: "an integer") }
        return i
    }

    /// An integer within `range`, or an error naming the key and the range.
    func int(_ value: TOMLValueConvertible, at path: [String], in range: ClosedRange<Int>) throws(FivedCoreError) -> Int {
        let i = try int(value, at: path)
        guard range.contains(i) else {
            throw error(.configInvalidValue, path, "\(i) is out of range: use \(range.lowerBound) to \(range.upperBound)")
        }
        return i
    }

    /// A umask: an integer (`0o022`, TOML's octal) or a string of octal digits ("022"), at most 0o777.
    private func umask(_ value: TOMLValueConvertible, at path: [String]) throws(FivedCoreError) -> UInt16 {
        if let i = value.int {
            guard (0...0o777).contains(i) else { throw error(.configInvalidValue, path, "\(i) is not a umask: use 0o000 to 0o777") }
            return UInt16(i)
        }
        if let s = value.string {
            guard (1...4).contains(s.count), let v = UInt16(s, radix: 8), v <= 0o777 else {
                throw error(.configInvalidValue, path, "'\(DisplayText.escaped(s))' is not an octal umask such as \"077\"")
            }
            return v
        }
        throw mismatch(value, at: path, expected: "an octal integer (0o077) or a string (\"077\")")
    }

    func table(_ value: TOMLValueConvertible, at path: [String]) throws(FivedCoreError) -> TOMLTable {
        guard let t = value.table else { throw mismatch(value, at: path, expected: "a table") }
        return t
    }

    /// Each string of the array at `path`, as `read` takes it with its `path[i]` context.
    func each<T>(
        _ value: TOMLValueConvertible, at path: [String], _ read: (String, String) throws(FivedCoreError) -> T
    ) throws(FivedCoreError) -> [T] {
        var values: [T] = []
        for (i, raw) in try strings(value, at: path).enumerated() { values.append(try read(raw, context(path, index: i))) }
        return values
    }

    /// The string at `path` as `read` takes it, or nil when it is empty (the setting left off).
    func unlessEmpty<T>(
        _ value: TOMLValueConvertible, at path: [String], _ read: (String, String) throws(FivedCoreError) -> T
    ) throws(FivedCoreError) -> T? {
        let raw = try string(value, at: path)
        return raw.isEmpty ? nil : try read(raw, context(path))
    }

    func strings(_ value: TOMLValueConvertible, at path: [String]) throws(FivedCoreError) -> [String] {
        guard let array = value.array else { throw mismatch(value, at: path, expected: "an array of strings") }
        var out: [String] = []
        for (i, element) in array.enumerated() {
            guard let s = element.string else {
                throw FivedCoreError(
                    .configInvalidValue,
                    "\(context(path, index: i)): must be a string, not \(Self.describe(element.type))")
            }
            out.append(s)
        }
        return out
    }
}

/// How fived-connect treats a host key that is not in known_hosts.
/// A key that differs from the recorded one is refused whatever this says.
public enum StrictHostKeyChecking: String, Sendable, Equatable {
    /// Refuse unknown hosts (also ssh's default `ask`: fived-connect never has a
    /// terminal to ask on, so it behaves like `ssh -o BatchMode=yes`).
    case yes
    /// Record an unknown host's key and connect.
    case acceptNew = "accept-new"
    /// Record an unknown host's key and connect (a changed key is still refused).
    case no

    /// Parses an ssh_config value: yes, ask, accept-new, no, off.
    public init?(configValue: String) {
        switch configValue.lowercased() {
        case "yes", "ask", "true": self = .yes
        case "accept-new": self = .acceptNew
        case "no", "off", "false": self = .no
        default: return nil
        }
    }
}

/// What the command line says about the connection, before any config file.
public struct ClientCommandLine: Sendable, Equatable {
    /// `[user@]host` as typed.
    public var destination: String
    public var port: UInt16?
    /// `-l`.
    public var user: String?
    /// `-i`, in order.
    public var identityFiles: [String]
    /// `-o KEY=VALUE` (or `KEY VALUE`), in order.
    public var options: [String]

    public init(destination: String, port: UInt16? = nil, user: String? = nil, identityFiles: [String] = [], options: [String] = []) {
        self.destination = destination
        self.port = port
        self.user = user
        self.identityFiles = identityFiles
        self.options = options
    }
}

/// The facts about this machine that path expansion needs.
public struct ClientEnvironment: Sendable, Equatable {
    /// The home directory (`$HOME`, else the password database).
    public var home: String
    /// The local user name (the default remote user, as ssh does).
    public var localUser: String

    public init(home: String, localUser: String) {
        self.home = home
        self.localUser = localUser
    }
}

/// Every connection setting fived-connect uses, resolved the way ssh does it:
/// command-line flags first, then `-o` options, then the config file's lines for
/// the host in order; the first value found wins (IdentityFile accumulates).
public struct ClientOptions: Sendable, Equatable {
    /// fived's default port (TCPMUX's).
    public static let defaultPort: UInt16 = 1
    /// The default keys, tried after the configured ones.
    public static let defaultIdentityNames = ["id_ed25519", "id_ecdsa", "id_rsa"]

    /// The host as typed (matched against `Host` patterns).
    public var alias: String
    /// The address connected to (HostName, else the alias).
    public var hostName: String
    public var port: UInt16
    public var user: String
    /// -i and IdentityFile, expanded, in order; then the default keys.
    public var identityFiles: [String]
    /// CertificateFile (from -o and the config), expanded, in order: user
    /// certificates offered before everything else, each signed by the identity
    /// file whose key it certifies. While there are none, each identity file's
    /// `FILE-cert.pub` is offered after it (ssh.c `load_public_identity_files`).
    public var certificateFiles: [String]
    /// The known_hosts file read and (for accept-new/no) written.
    public var knownHostsFile: String
    /// GlobalKnownHostsFile (its first file): also read, never written. Default
    /// /etc/ssh/ssh_known_hosts, which libssh reads too (options.c `ssh_options_apply`).
    public var globalKnownHostsFile: String
    public var strictHostKeyChecking: StrictHostKeyChecking
    /// Seconds for the TCP connect and each blocking SSH step.
    public var connectTimeout: Int
    /// Seconds between keepalive packets once connected; 0 disables them.
    public var serverAliveInterval: Int
    /// Keepalive intervals without an answer before the connection counts as dead.
    public var serverAliveCountMax: Int
    /// IdentitiesOnly: when yes, the agent is not asked.
    public var identitiesOnly: Bool
    /// -o options and config keys that were read but mean nothing to fived-connect.
    public var ignored: [String]

    /// Keys fived-connect understands (lowercased).
    static let known: Set<String> = [
        "hostname", "port", "user", "identityfile", "userknownhostsfile", "stricthostkeychecking",
        "connecttimeout", "serveraliveinterval", "serveralivecountmax", "identitiesonly", "batchmode",
        "certificatefile", "globalknownhostsfile",
    ]

    /// The GlobalKnownHostsFile default: libssh's and OpenSSH's first system file.
    public static let defaultGlobalKnownHostsFile = "/etc/ssh/ssh_known_hosts"

    /// Resolves the options for `commandLine`, reading `config` (already parsed, or nil).
    public static func resolve(
        commandLine: ClientCommandLine,
        config: SSHConfigFile?,
        environment: ClientEnvironment
    ) throws(FivedCoreError) -> ClientOptions {
        // [user@]host: the last '@' separates, so "a@b@host" has user "a@b".
        var destinationUser: String?
        var alias = commandLine.destination
        if let at = alias.lastIndex(of: "@") {
            destinationUser = String(alias[..<at])
            alias = String(alias[alias.index(after: at)...])
        }
        if alias.hasPrefix("[") && alias.hasSuffix("]") { alias = String(alias.dropFirst().dropLast()) }
        guard !alias.isEmpty else {
            throw FivedCoreError(.invalidClientOption, "'\(DisplayText.escaped(commandLine.destination))' has no host name")
        }
        if destinationUser?.isEmpty == true {
            throw FivedCoreError(.invalidClientOption, "'\(DisplayText.escaped(commandLine.destination))' has an empty user name before '@'")
        }

        var lines: [SSHConfigFile.Line] = []
        for option in commandLine.options {
            guard let parsed = try SSHConfigFile.tokenize(Substring(option), origin: "-o") else {
                throw FivedCoreError(.invalidClientOption, "-o '\(DisplayText.escaped(option))': expected KEY=VALUE")
            }
            if parsed.0 == "host" || parsed.0 == "match" || parsed.0 == "include" {
                throw FivedCoreError(.invalidClientOption, "-o '\(DisplayText.escaped(option))': \(parsed.0) is not an option")
            }
            lines.append(SSHConfigFile.Line(keyword: parsed.0, arguments: parsed.1, origin: "-o"))
        }
        if let config { lines += config.lines(for: alias) }

        var first: [String: SSHConfigFile.Line] = [:]
        var identityLines: [SSHConfigFile.Line] = []
        var certificateLines: [SSHConfigFile.Line] = []
        var ignored: [String] = []
        for line in lines {
            if line.keyword == "identityfile" { identityLines.append(line); continue }
            if line.keyword == "certificatefile" { certificateLines.append(line); continue }
            if !known.contains(line.keyword) {
                if line.origin == "-o" { ignored.append(line.keyword) }
                continue
            }
            if first[line.keyword] == nil { first[line.keyword] = line }
        }

        func fail(_ line: SSHConfigFile.Line, _ why: String) -> FivedCoreError {
            let what = line.origin == "-o" ? "-o \(line.keyword)" : "\(line.origin): \(line.keyword)"
            return FivedCoreError(.invalidClientOption, "\(what) '\(DisplayText.escaped(line.value))': \(why)")
        }
        func integer(_ key: String, range: ClosedRange<Int>, default value: Int) throws(FivedCoreError) -> Int {
            guard let line = first[key] else { return value }
            guard let n = Int(line.value), range.contains(n) else {
                throw fail(line, "use a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        func boolean(_ key: String) throws(FivedCoreError) -> Bool {
            guard let line = first[key] else { return false }
            switch line.value.lowercased() {
            case "yes", "true": return true
            case "no", "false": return false
            default: throw fail(line, "use yes or no")
            }
        }

        let port: UInt16
        if let p = commandLine.port {
            port = p
        } else {
            port = UInt16(try integer("port", range: 1...65535, default: Int(defaultPort)))
        }
        let user = commandLine.user ?? first["user"]?.value ?? destinationUser ?? environment.localUser

        var tokens = PathTokens(
            home: environment.home, localUser: environment.localUser, alias: alias,
            hostName: alias, port: port, remoteUser: user)
        var hostName = alias
        if let line = first["hostname"] {
            hostName = tokens.expand(line.value, tilde: false)
            if hostName.isEmpty { throw fail(line, "empty host name") }
        }
        tokens.hostName = hostName

        var identities: [String] = commandLine.identityFiles.map { tokens.expand($0, tilde: true) }
        for line in identityLines { identities.append(tokens.expand(line.value, tilde: true)) }
        for name in defaultIdentityNames { identities.append("\(environment.home)/.ssh/\(name)") }
        var seen = Set<String>()
        identities = identities.filter { seen.insert($0).inserted }
        var seenCertificates = Set<String>()
        let certificates = certificateLines.map { tokens.expand($0.value, tilde: true) }
            .filter { seenCertificates.insert($0).inserted }

        var knownHosts = "\(environment.home)/.ssh/known_hosts"
        if let line = first["userknownhostsfile"], let firstFile = line.arguments.first {
            knownHosts = firstFile.lowercased() == "none" ? "/dev/null" : tokens.expand(firstFile, tilde: true)
        }

        var globalKnownHosts = defaultGlobalKnownHostsFile
        if let line = first["globalknownhostsfile"], let firstFile = line.arguments.first {
            globalKnownHosts = firstFile.lowercased() == "none" ? "/dev/null" : tokens.expand(firstFile, tilde: true)
        }

        var strict = StrictHostKeyChecking.yes
        if let line = first["stricthostkeychecking"] {
            guard let value = StrictHostKeyChecking(configValue: line.value) else {
                throw fail(line, "use yes, accept-new or no")
            }
            strict = value
        }

        return ClientOptions(
            alias: alias,
            hostName: hostName,
            port: port,
            user: user,
            identityFiles: identities,
            certificateFiles: certificates,
            knownHostsFile: knownHosts,
            globalKnownHostsFile: globalKnownHosts,
            strictHostKeyChecking: strict,
            connectTimeout: try integer("connecttimeout", range: 1...3600, default: 15),
            serverAliveInterval: try integer("serveraliveinterval", range: 0...86400, default: 15),
            serverAliveCountMax: try integer("serveralivecountmax", range: 1...1000, default: 3),
            identitiesOnly: try boolean("identitiesonly"),
            ignored: ignored
        )
    }

    /// True for the default keys (`~/.ssh/id_*`), which may be missing without a word.
    public static func isDefaultIdentity(_ path: String) -> Bool {
        defaultIdentityNames.contains { path.hasSuffix("/.ssh/\($0)") }
    }

    /// The name known_hosts records for this host: `host` on port 22, else `[host]:port`.
    public var knownHostsName: String {
        port == 22 ? hostName : "[\(hostName)]:\(port)"
    }
}

/// ssh_config's `%` tokens and `~` for paths and HostName.
struct PathTokens {
    var home: String
    var localUser: String
    var alias: String
    var hostName: String
    var port: UInt16
    var remoteUser: String

    func expand(_ raw: String, tilde: Bool) -> String {
        var text = raw
        if tilde {
            if text == "~" { text = home } else if text.hasPrefix("~/") { text = home + text.dropFirst() }
        }
        guard text.contains("%") else { return text }
        var out = ""
        var iterator = text.makeIterator()
        while let ch = iterator.next() {
            guard ch == "%" else { out.append(ch); continue }
            guard let token = iterator.next() else { out.append("%"); break }
            switch token {
            case "%": out.append("%")
            case "h": out += hostName
            case "n": out += alias
            case "p": out += String(port)
            case "r": out += remoteUser
            case "u": out += localUser
            case "d": out += home
            default: out.append("%"); out.append(token)
            }
        }
        return out
    }
}

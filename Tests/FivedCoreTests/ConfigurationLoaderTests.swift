import Foundation
import Testing

@testable import FivedCore

/// A directory of its own for one test, removed by `remove()`.
private struct TempDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "fived-config-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

private let fingerprint = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
private let allExecutable: @Sendable (String) -> Bool = { _ in true }

private func name(_ raw: String) -> ServiceName { ServiceName(raw)! }

// MARK: - Parsing a file

@Suite struct ConfigurationParseTests {
    /// The example of SPEC.md, with a real fingerprint.
    static let specExample = """
        listen = ["0.0.0.0:1"]
        host_keys = ["/etc/fived/ssh_host_ed25519_key"]
        authorized_keys = ["/etc/fived/authorized_keys", "%h/.ssh/authorized_keys"]
        tcpmux = []                      # plain RFC 1078 listeners; none by default
        log_level = "info"

        [limits]
        login_grace_seconds = 30         # time to authenticate before the connection is closed
        max_startups = 256               # unauthenticated connections at once, in all
        max_startups_per_source = 16     # ... from one address
        max_channels_per_connection = 1024

        [services.web]
        connect = "127.0.0.1:8080"       # or "unix:/run/web.sock"
        proxy_protocol = true            # send a PROXY v2 header carrying the caller's identity
        allow = ["alice@laptop", "\(fingerprint)", "user:bob"]   # key comment, key fingerprint or user
        tcpmux = false                   # also offer it on the plain TCPMUX listener

        [services.echo]
        exec = ["/bin/cat"]              # a process per channel, stdin/stdout on the channel
        """

    @Test func parsesTheSpecExample() throws {
        let c = try ConfigurationLoader.parse(toml: Self.specExample, file: "/etc/fived/fived.toml")
        #expect(c.listen == [ListenAddress(host: "0.0.0.0", port: 1)])
        #expect(c.hostKeys == ["/etc/fived/ssh_host_ed25519_key"])
        #expect(c.authorizedKeys == ["/etc/fived/authorized_keys", "%h/.ssh/authorized_keys"])
        #expect(c.tcpmux == [])
        #expect(c.logLevel == .info)
        #expect(c.limits == Limits())
        #expect(c.statusAllow == [])
        #expect(c.sortedServices.map(\.name.value) == ["echo", "web"])

        let web = try #require(c.services[name("web")])
        #expect(web.backend == .tcp(host: "127.0.0.1", port: 8080))
        #expect(web.proxyProtocol)
        #expect(!web.tcpmux)
        #expect(web.allow == [.comment("alice@laptop"), .fingerprint(fingerprint), .user("bob")])
        #expect(web.origin == "/etc/fived/fived.toml")

        let echo = try #require(c.services[name("echo")])
        #expect(echo.backend == .exec(argv: ["/bin/cat"]))
        #expect(!echo.proxyProtocol)
        #expect(echo.allow == nil)
        #expect(!echo.tcpmux)
    }

    @Test func emptyFileGivesEmptyListsAndDefaultScalars() throws {
        let c = try ConfigurationLoader.parse(toml: "# nothing\n", file: "fived.toml")
        #expect(c == Configuration())
        #expect(c.logLevel == .info)
        #expect(c.limits == Limits(loginGraceSeconds: 30, maxStartups: 256, maxStartupsPerSource: 16, maxChannelsPerConnection: 1024))
    }

    @Test(arguments: [
        ("127.0.0.1:8080", Backend.tcp(host: "127.0.0.1", port: 8080)),
        ("localhost:8080", .tcp(host: "localhost", port: 8080)),
        ("[::1]:80", .tcp(host: "::1", port: 80)),
        ("tcp:[::1]:80", .tcp(host: "::1", port: 80)),
        ("tcp:db.internal:5432", .tcp(host: "db.internal", port: 5432)),
        ("unix:/run/web.sock", .unix(path: "/run/web.sock")),
    ])
    func connectForms(_ connect: String, _ expected: Backend) throws {
        let c = try ConfigurationLoader.parse(toml: "[services.web]\nconnect = \"\(connect)\"\n", file: "fived.toml")
        #expect(c.services[name("web")]?.backend == expected)
    }

    @Test func execKeepsArgumentsAsWritten() throws {
        let c = try ConfigurationLoader.parse(
            toml: #"services.git.exec = ["/usr/bin/git", "daemon", "--inetd", "a b"]"#, file: "fived.toml")
        #expect(c.services[name("git")]?.backend == .exec(argv: ["/usr/bin/git", "daemon", "--inetd", "a b"]))
    }

    @Test func statusTableSetsOnlyItsAllowList() throws {
        let c = try ConfigurationLoader.parse(
            toml: "[services.Status]\nallow = [\"user:root\", \"\(fingerprint)\"]\n", file: "fived.toml")
        #expect(c.statusAllow == [.user("root"), .fingerprint(fingerprint)])
        #expect(c.services.isEmpty)
    }

    @Test func emptyAllowListMeansNobody() throws {
        let c = try ConfigurationLoader.parse(toml: "[services.web]\nconnect = \"127.0.0.1:80\"\nallow = []\n", file: "f")
        #expect(c.services[name("web")]?.allow == [])
    }

    @Test func serviceNamesAreFolded() throws {
        let c = try ConfigurationLoader.parse(toml: "[services.WebSite]\nconnect = \"127.0.0.1:80\"\n", file: "f")
        #expect(c.services[name("website")]?.name.value == "website")
    }

    @Test func inlineTablesAndDottedKeysWork() throws {
        let c = try ConfigurationLoader.parse(
            toml: """
                [services]
                a = { connect = "127.0.0.1:1", tcpmux = true }
                b.exec = ["/bin/true"]
                """, file: "f")
        #expect(c.services[name("a")]?.tcpmux == true)
        #expect(c.services[name("b")]?.backend == .exec(argv: ["/bin/true"]))
    }

    @Test func readsEveryLimitAndLogLevel() throws {
        let c = try ConfigurationLoader.parse(
            toml: """
                log_level = "debug"
                [limits]
                login_grace_seconds = 5
                max_startups = 10
                max_startups_per_source = 10
                max_channels_per_connection = 1
                """, file: "f")
        #expect(c.logLevel == .debug)
        #expect(c.limits == Limits(loginGraceSeconds: 5, maxStartups: 10, maxStartupsPerSource: 10, maxChannelsPerConnection: 1))
    }

    @Test func readsTheIsolationLimitsAndKeepalives() throws {
        let c = try ConfigurationLoader.parse(
            toml: """
                client_alive_interval_seconds = 0
                client_alive_count_max = 5
                [limits]
                max_startups_per_source_prefix6 = 48
                max_connections_per_key = 2
                max_channels_per_key = 3
                connect_timeout_seconds = 4
                [services.web]
                connect = "127.0.0.1:80"
                connect_timeout_seconds = 1
                [services.app]
                connect = "127.0.0.1:81"
                """, file: "f")
        #expect(c.clientAliveIntervalSeconds == 0 && c.clientAliveCountMax == 5)
        #expect(c.limits == Limits(maxStartupsPerSourcePrefix6: 48, maxConnectionsPerKey: 2, maxChannelsPerKey: 3, connectTimeoutSeconds: 4))
        #expect(c.connectTimeoutMilliseconds(for: c.services[name("web")]!) == 1000)
        #expect(c.connectTimeoutMilliseconds(for: c.services[name("app")]!) == 4000)
        let defaults = try ConfigurationLoader.parse(toml: "", file: "f")
        #expect(defaults.clientAliveIntervalSeconds == 15 && defaults.clientAliveCountMax == 3)
    }

    @Test func readsPty() throws {
        let c = try ConfigurationLoader.parse(
            toml: """
                [services.repl]
                exec = ["/usr/bin/python3"]
                pty = true
                [services.echo]
                exec = ["/bin/cat"]
                """, file: "f")
        #expect(c.services[name("repl")]!.pty)
        #expect(!c.services[name("echo")]!.pty)
        let e = try #require(parseError("[services.web]\nconnect = \"127.0.0.1:80\"\npty = true\n"))
        #expect(e.message == "fived.toml:3: services.web.pty: only an exec service takes 'pty': remove it or use 'exec'")
        let notBool = try #require(parseError("[services.repl]\nexec = [\"/bin/sh\"]\npty = \"yes\"\n"))
        #expect(notBool.message.hasPrefix("fived.toml:3: services.repl.pty:"))
    }

    @Test(arguments: [
        ("client_alive_interval_seconds = -1", "fived.toml:1: client_alive_interval_seconds: -1 is out of range: use 0 to 3600"),
        ("client_alive_count_max = 0", "fived.toml:1: client_alive_count_max: 0 is out of range: use 1 to 100"),
        (
            "[services.w]\nconnect = \"127.0.0.1:1\"\nconnect_timeout_seconds = 0",
            "fived.toml:3: services.w.connect_timeout_seconds: 0 is out of range: use 1 to 300"
        ),
    ])
    func badKeepalivesAndTimeoutsAreNamed(_ body: String, _ message: String) throws {
        try expectParseError(body + "\n", .configInvalidValue, message)
    }

    // MARK: Syntax

    @Test func syntaxErrorNamesFileAndLine() throws {
        let e = try expectParseError("listen = [\"0.0.0.0:1\"]\n\n[services.web\nconnect = \"x\"\n", .configSyntax, prefix: "fived.toml:3: TOML syntax error: ")
        #expect(!e.message.contains("\n"))
    }

    /// Errors named by file, line and key: the text, the code, the whole message.
    @Test(
        arguments: [
            // a NUL character is refused, not read as the end of the file
            ("log_level = \"info\"\n\u{0}\nlisten = 3\n", .configSyntax, "fived.toml:2: TOML syntax error: NUL character in the file"),
            // both connect and exec
            (
                "[services.web]\nconnect = \"127.0.0.1:80\"\nexec = [\"/bin/cat\"]\n", .configInvalidValue,
                "fived.toml:1: services.web: has both 'connect' and 'exec': a service needs exactly one"
            ),
            // neither connect nor exec
            (
                "[services.web]\nproxy_protocol = true\n", .configInvalidValue,
                "fived.toml:1: services.web: has neither 'connect' nor 'exec': a service needs exactly one"
            ),
            // the status table takes only allow
            (
                "[services.status]\nallow = []\nconnect = \"127.0.0.1:80\"\n", .configInvalidValue,
                "fived.toml:3: services.status.connect: 'status' is the built-in status table: its table takes only 'allow'"
            ),
            // a log level fived does not know
            (
                "log_level = \"verbose\"\n", .configInvalidValue,
                "fived.toml:1: log_level: 'verbose' is not a log level: use one of trace, debug, info, warning, error"
            ),
        ] as [(toml: String, code: FivedCoreError.Code, message: String)])
    func namedError(_ error: (toml: String, code: FivedCoreError.Code, message: String)) throws {
        try expectParseError(error.toml, error.code, error.message)
    }

    /// The same where the message goes on (a parser's or a list's words): how it starts.
    @Test(
        arguments: [
            // a key given twice is a syntax error
            ("log_level = \"info\"\nlog_level = \"debug\"\n", .configSyntax, "fived.toml:2: "),
            // help is reserved
            ("[services.HELP]\nconnect = \"127.0.0.1:80\"\n", .invalidServiceName, "fived.toml:1: services.HELP: 'help' is reserved"),
            // a bare IPv6 listen address
            (
                "log_level = \"info\"\nlisten = [\"0.0.0.0:1\", \"::1:22\"]\n", .invalidListenAddress,
                "fived.toml:2: listen[1]: '::1:22' looks like a bare IPv6 address"
            ),
            // a tcpmux address without a port
            ("tcpmux = [\"0.0.0.0\"]\n", .invalidListenAddress, "fived.toml:1: tcpmux[0]: '0.0.0.0' has no port"),
        ] as [(toml: String, code: FivedCoreError.Code, prefix: String)])
    func namedErrorStart(_ error: (toml: String, code: FivedCoreError.Code, prefix: String)) throws {
        try expectParseError(error.toml, error.code, prefix: error.prefix)
    }

    // MARK: Unknown keys

    @Test func unknownServiceKeyIsNamedWithLine() throws {
        try expectParseError(
            """
            [services.web]
            connect = "127.0.0.1:80"

            [services.echo]
            exec = ["/bin/cat"]
            conect = "127.0.0.1:7"
            """, .configUnknownKey, "fived.toml:6: unknown key 'services.echo.conect' (did you mean 'connect'?)")
    }

    @Test(arguments: [
        ("lisen = [\"0.0.0.0:1\"]", "fived.toml:1: unknown key 'lisen' (did you mean 'listen'?)"),
        ("Listen = []", "fived.toml:1: unknown key 'Listen' (did you mean 'listen'?)"),
        ("hostkeys = []", "fived.toml:1: unknown key 'hostkeys' (did you mean 'host_keys'?)"),
        ("colour = \"red\"", "fived.toml:1: unknown key 'colour'"),
        ("[service.web]\nconnect = \"127.0.0.1:80\"", "fived.toml:1: unknown key 'service' (did you mean 'services'?)"),
        ("[limits]\nmax_startup = 3", "fived.toml:2: unknown key 'limits.max_startup' (did you mean 'max_startups'?)"),
        (
            "[services.web]\nconnect = \"127.0.0.1:80\"\nproxy = true",
            "fived.toml:3: unknown key 'services.web.proxy'"
        ),
        ("[services.status]\nallow = []\nadmins = []", "fived.toml:3: unknown key 'services.status.admins'"),
        ("[services.web]\nconnect = \"127.0.0.1:80\"\n\"odd key\" = 1", "fived.toml:3: unknown key 'services.web.\"odd key\"'"),
    ])
    func unknownKeysAreNamed(_ toml: String, _ message: String) throws {
        try expectParseError(toml, .configUnknownKey, message)
    }

    @Test func unknownKeyInAnInlineTableNamesItsLine() throws {
        let e = try #require(parseError("\n[services]\nweb = { connect = \"127.0.0.1:80\", alow = [] }\n"))
        #expect(e.message == "fived.toml:3: unknown key 'services.web.alow' (did you mean 'allow'?)")
    }

    @Test func linesAreCountedInCRLFFiles() throws {
        let e = try #require(parseError("[services.web]\r\nconnect = \"127.0.0.1:80\"\r\nconect = 1\r\n"))
        #expect(e.message.hasPrefix("fived.toml:3: unknown key 'services.web.conect'"))
    }

    @Test func keysInsideMultiLineStringsAreNotMistakenForKeys() throws {
        let e = try #require(
            parseError(
                """
                [services.web]
                allow = [\"\"\"
                conect = 1
                \"\"\"]
                connect = "127.0.0.1:80"
                conect = 2
                """))
        #expect(e.message.hasPrefix("fived.toml:6: unknown key 'services.web.conect'"))
    }

    // MARK: Types

    @Test(arguments: [
        ("listen = \"0.0.0.0:1\"", "fived.toml:1: listen: must be an array of strings, not a string"),
        ("listen = [\"0.0.0.0:1\", 22]", "fived.toml:1: listen[1]: must be a string, not an integer"),
        ("host_keys = \"/k\"", "fived.toml:1: host_keys: must be an array of strings, not a string"),
        ("authorized_keys = [true]", "fived.toml:1: authorized_keys[0]: must be a string, not a boolean"),
        ("tcpmux = {}", "fived.toml:1: tcpmux: must be an array of strings, not a table"),
        ("log_level = 3", "fived.toml:1: log_level: must be a string, not an integer"),
        ("limits = 3", "fived.toml:1: limits: must be a table, not an integer"),
        ("[limits]\nmax_startups = \"10\"", "fived.toml:2: limits.max_startups: must be an integer, not a string"),
        ("[limits]\nmax_startups = 10.5", "fived.toml:2: limits.max_startups: must be an integer, not a floating-point number"),
        ("services = []", "fived.toml:1: services: must be a table, not an array"),
        ("[services]\nweb = \"127.0.0.1:80\"", "fived.toml:2: services.web: must be a table, not a string"),
        ("[services.web]\nconnect = [\"127.0.0.1:80\"]", "fived.toml:2: services.web.connect: must be a string, not an array"),
        ("[services.web]\nexec = \"/bin/cat\"", "fived.toml:2: services.web.exec: must be an array of strings, not a string"),
        (
            "[services.web]\nconnect = \"127.0.0.1:80\"\nproxy_protocol = \"yes\"",
            "fived.toml:3: services.web.proxy_protocol: must be true or false, not a string"
        ),
        ("[services.web]\nconnect = \"127.0.0.1:80\"\ntcpmux = 1", "fived.toml:3: services.web.tcpmux: must be true or false, not an integer"),
        (
            "[services.web]\nconnect = \"127.0.0.1:80\"\nallow = \"user:bob\"",
            "fived.toml:3: services.web.allow: must be an array of strings, not a string"
        ),
        ("[services.status]\nallow = [1]", "fived.toml:2: services.status.allow[0]: must be a string, not an integer"),
    ])
    func wrongTypesAreNamed(_ toml: String, _ message: String) throws {
        try expectParseError(toml, .configInvalidValue, message)
    }

    // MARK: Services

    @Test(arguments: [
        ("[services.\"bad name\"]\nconnect = \"127.0.0.1:80\"", "fived.toml:1: invalid service name 'bad name'"),
        (
            "[services.\(String(repeating: "x", count: 65))]\nconnect = \"127.0.0.1:80\"",
            "fived.toml:1: invalid service name '\(String(repeating: "x", count: 65))'"
        ),
        ("[services.\"caf\u{e9}\"]\nconnect = \"127.0.0.1:80\"", "fived.toml:1: invalid service name 'caf\u{e9}'"),
    ])
    func invalidServiceNamesAreNamed(_ toml: String, _ prefix: String) throws {
        try expectParseError(toml, .invalidServiceName, prefix: prefix)
    }

    @Test func namesDifferingOnlyByCaseAreAnError() throws {
        try expectParseError(
            """
            [services.web]
            connect = "127.0.0.1:80"
            [services.Web]
            connect = "127.0.0.1:81"
            """, .configInvalidValue,
            "fived.toml:1: services 'Web' and 'web' differ only by case, and service names are compared without case")
    }

    @Test(arguments: [
        ("connect = \"localhost\"", "fived.toml:2: services.web.connect: 'localhost' has no port"),
        ("connect = \"::1:80\"", "fived.toml:2: services.web.connect: '::1:80' looks like a bare IPv6 address"),
        ("connect = \"127.0.0.1:0\"", "fived.toml:2: services.web.connect: '127.0.0.1:0' has port '0': use a number from 1 to 65535"),
        (
            "connect = \"/run/web.sock\"",
            "fived.toml:2: services.web.connect: '/run/web.sock' is not HOST:PORT: for a Unix socket write unix:/run/web.sock"
        ),
        ("connect = \"unix:run/web.sock\"", "fived.toml:2: services.web.connect: unix socket path 'run/web.sock' must be absolute"),
        ("connect = \"exec:/bin/cat\"", "fived.toml:2: services.web.connect: 'exec:/bin/cat' is not an address"),
        ("exec = []", "fived.toml:2: services.web.exec: exec needs a program"),
        ("exec = [\"cat\"]", "fived.toml:2: services.web.exec: program 'cat' must be an absolute path"),
    ])
    func badBackendsAreNamed(_ body: String, _ prefix: String) throws {
        try expectParseError("[services.web]\n\(body)\n", .invalidBackend, prefix: prefix)
    }

    @Test(arguments: [
        ("allow = [\"user:bob\", \"SHA256:short\"]", "fived.toml:3: services.web.allow[1]: 'SHA256:short' is not a SHA256 fingerprint"),
        ("allow = [\"\"]", "fived.toml:3: services.web.allow[0]: empty allow entry"),
        ("allow = [\"user:\"]", "fived.toml:3: services.web.allow[0]: 'user:' needs a user name"),
        ("allow = [\"principal:\"]", "fived.toml:3: services.web.allow[0]: 'principal:' needs a principal"),
        ("allow = [\"key-id:\"]", "fived.toml:3: services.web.allow[0]: 'key-id:' needs a key ID"),
        ("allow = [\"ca:\"]", "fived.toml:3: services.web.allow[0]: 'ca:': write ca:SHA256:... with the CA key's fingerprint"),
        ("allow = [\"ca:SHA256:short\"]", "fived.toml:3: services.web.allow[0]: 'SHA256:short' is not a SHA256 fingerprint"),
    ])
    func badAllowEntriesAreNamed(_ body: String, _ prefix: String) throws {
        try expectParseError("[services.web]\nconnect = \"127.0.0.1:80\"\n\(body)\n", .invalidAllowRule, prefix: prefix)
    }

    @Test func certificateAllowEntries() throws {
        let toml = """
            [services.web]
            connect = "127.0.0.1:80"
            allow = ["principal:ops", "key-id:alice-laptop", "ca:\(fingerprint)", "principal:a:b", "user:bob"]
            """
        let c = try ConfigurationLoader.parse(toml: toml, file: "fived.toml")
        #expect(
            c.services[name("web")]?.allow == [
                .principal("ops"), .keyID("alice-laptop"), .certificateAuthority(fingerprint), .principal("a:b"), .user("bob"),
            ])
        #expect(
            c.services[name("web")]?.allow?.map(\.description) == ["principal:ops", "key-id:alice-laptop", "ca:\(fingerprint)", "principal:a:b", "user:bob"])
    }

    @Test func certificateKeys() throws {
        let toml = """
            trusted_user_ca_keys = ["/etc/fived/user_ca.pub", "/etc/fived/old_ca.pub"]
            authorized_principals_file = "/etc/fived/principals/%u"
            revoked_keys = ["/etc/fived/revoked.krl"]
            authorized_keys_command = "/usr/local/bin/keys %u %f %t %k %h 100%%"
            authorized_keys_command_user = "nobody"
            host_certificates = ["/etc/fived/ssh_host_ed25519_key-cert.pub"]
            """
        let c = try ConfigurationLoader.parse(toml: toml, file: "fived.toml")
        #expect(c.trustedUserCAKeys == ["/etc/fived/user_ca.pub", "/etc/fived/old_ca.pub"])
        #expect(c.authorizedPrincipalsFile == "/etc/fived/principals/%u")
        #expect(c.revokedKeys == ["/etc/fived/revoked.krl"])
        #expect(c.authorizedKeysCommand == "/usr/local/bin/keys %u %f %t %k %h 100%%")
        #expect(c.authorizedKeysCommandUser == "nobody")
        #expect(c.hostCertificates == ["/etc/fived/ssh_host_ed25519_key-cert.pub"])
        // the SPEC's defaults: empty strings and lists mean "not set"
        let empty = """
            trusted_user_ca_keys = []
            authorized_principals_file = ""
            revoked_keys = []
            authorized_keys_command = ""
            authorized_keys_command_user = ""
            host_certificates = []
            """
        #expect(try ConfigurationLoader.parse(toml: empty, file: "fived.toml") == Configuration())
        #expect(
            try ConfigurationLoader.parse(toml: "authorized_principals_file = \".ssh/principals\"", file: "f").authorizedPrincipalsFile == ".ssh/principals")
    }

    @Test(arguments: [
        ("trusted_user_ca_keys = [\"ca.pub\"]", "fived.toml:1: trusted_user_ca_keys[0]: 'ca.pub' is not an absolute path"),
        (
            "trusted_user_ca_keys = [\"/etc/%u/ca.pub\"]",
            "fived.toml:1: trusted_user_ca_keys[0]: '/etc/%u/ca.pub': %-tokens are not expanded here, the file is the same for every user"
        ),
        ("trusted_user_ca_keys = \"/etc/ca.pub\"", "fived.toml:1: trusted_user_ca_keys: must be an array of strings, not a string"),
        ("revoked_keys = [\"/ok\", \"\"]", "fived.toml:1: revoked_keys[1]: '' is not a file name"),
        ("revoked_keys = [\"krl\"]", "fived.toml:1: revoked_keys[0]: 'krl' is not an absolute path"),
        (
            "authorized_principals_file = \"/p/%x\"",
            "fived.toml:1: authorized_principals_file: '/p/%x' has '%x': use %h (home), %u (user) or %% (a percent sign)"
        ),
        ("authorized_principals_file = [\"/p\"]", "fived.toml:1: authorized_principals_file: must be a string, not an array"),
        (
            "authorized_keys_command = \"keys %u\"\nauthorized_keys_command_user = \"nobody\"",
            "fived.toml:1: authorized_keys_command: 'keys %u' must start with the program's absolute path"
        ),
        (
            "authorized_keys_command = \"/bin/keys %C\"\nauthorized_keys_command_user = \"nobody\"",
            "fived.toml:1: authorized_keys_command: '/bin/keys %C' has '%C': use %u (user), %h (home), %t (key type), %f (fingerprint), %k (key) or %%"
        ),
        (
            "authorized_keys_command = \"/bin/keys\"",
            "fived.toml:1: authorized_keys_command: needs authorized_keys_command_user, the user to run it as (as sshd's AuthorizedKeysCommandUser)"
        ),
        ("authorized_keys_command_user = \"no body\"", "fived.toml:1: authorized_keys_command_user: 'no body' is not a user name"),
        ("host_certificates = [\"\"]", "fived.toml:1: host_certificates[0]: '' is not a file name"),
        ("trusted_user_ca_key = []", "fived.toml:1: unknown key 'trusted_user_ca_key' (did you mean 'trusted_user_ca_keys'?)"),
    ])
    func badCertificateKeysAreNamed(_ toml: String, _ message: String) throws {
        let e = try #require(parseError(toml + "\n"))
        #expect(e.message == message)
        #expect(!e.message.contains("\n"))
    }

    // MARK: Scalars and lists

    @Test(arguments: [
        ("login_grace_seconds = 0", "fived.toml:2: limits.login_grace_seconds: 0 is out of range: use 1 to 3600"),
        ("login_grace_seconds = 86400", "fived.toml:2: limits.login_grace_seconds: 86400 is out of range: use 1 to 3600"),
        ("max_startups = -1", "fived.toml:2: limits.max_startups: -1 is out of range: use 1 to 65536"),
        ("max_channels_per_connection = 10000000000", "fived.toml:2: limits.max_channels_per_connection: 10000000000 is out of range: use 1 to 65536"),
        ("max_startups_per_source = 300", "fived.toml:2: limits.max_startups_per_source: 300 is more than max_startups (256)"),
        ("max_startups = 8", "fived.toml:2: limits.max_startups_per_source: 16 is more than max_startups (8)"),
        ("max_startups_per_source_prefix6 = 129", "fived.toml:2: limits.max_startups_per_source_prefix6: 129 is out of range: use 1 to 128"),
        ("max_connections_per_key = 0", "fived.toml:2: limits.max_connections_per_key: 0 is out of range: use 1 to 65536"),
        ("max_channels_per_key = 2000000", "fived.toml:2: limits.max_channels_per_key: 2000000 is out of range: use 1 to 1048576"),
        ("connect_timeout_seconds = 301", "fived.toml:2: limits.connect_timeout_seconds: 301 is out of range: use 1 to 300"),
    ])
    func badLimitsAreNamed(_ body: String, _ message: String) throws {
        try expectParseError("[limits]\n\(body)\n", .configInvalidValue, message)
    }

    @Test func badPathsAreNamed() throws {
        let empty = try #require(parseError("host_keys = [\"\"]\n"))
        #expect(empty.message == "fived.toml:1: host_keys[0]: '' is not a file name")
        try expectParseError(
            "authorized_keys = [\"/etc/fived/%u\", \"/home/%x/keys\"]\n", .configInvalidValue,
            "fived.toml:1: authorized_keys[1]: '/home/%x/keys' has '%x': use %h (home), %u (user) or %% (a percent sign)")
        #expect(parseError("authorized_keys = [\"%h/.ssh/authorized_keys\", \"/keys/%u\", \"/100%%\"]") == nil)
        #expect(parseError("authorized_keys = [\"/keys/%\"]")?.message.contains("has '%'") == true)
    }

    @Test func everyMessageIsOneLine() {
        let inputs = [
            "[services.web]\nconnect = \"a\\nb:80\"", "log_level = \"x\\ny\"", "[services.\"a\\nb\"]\nconnect = \"x:1\"",
            "listen = [\"\\u001b[2J:1\"]", "[services.web]\nexec = [\"x\\ny\"]",
        ]
        for toml in inputs {
            let e = parseError(toml)
            #expect(e != nil, "\(toml)")
            #expect(e?.message.contains("\n") == false, "\(toml)")
            #expect(e?.message.contains("\u{1b}") == false, "\(toml)")
        }
    }
}

// MARK: - Loading: file plus flags

@Suite struct ConfigurationLoadTests {
    @Test func noFileNoFlagsGivesTheDefaults() throws {
        let c = try ConfigurationLoader.load(ConfigurationOverrides())
        #expect(c.listen == [ListenAddress(host: "0.0.0.0", port: 1), ListenAddress(host: "::", port: 1)])
        #expect(c.listen.map(\.description) == ["0.0.0.0:1", "[::]:1"])
        #expect(c.hostKeys == ["/etc/fived/ssh_host_ed25519_key"])
        #expect(c.authorizedKeys == ["%h/.ssh/authorized_keys"])
        #expect(c.tcpmux == [])
        #expect(c.logLevel == .info)
        #expect(c.limits == Limits())
        #expect(c.services.isEmpty)
        #expect(c.statusAllow == [])
    }

    @Test func readsTheFile() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = try dir.write("fived.toml", ConfigurationParseTests.specExample)
        let c = try ConfigurationLoader.load(ConfigurationOverrides(configFile: file), isExecutable: allExecutable)
        #expect(c.listen == [ListenAddress(host: "0.0.0.0", port: 1)])
        #expect(c.services.count == 2)
        #expect(c.services[name("web")]?.origin == file)
    }

    @Test func flagsAppendToFileLists() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = try dir.write(
            "fived.toml",
            """
            listen = ["127.0.0.1:2222"]
            host_keys = ["/k/one"]
            authorized_keys = ["/a/one"]
            tcpmux = ["127.0.0.1:1"]
            """)
        let c = try ConfigurationLoader.load(
            ConfigurationOverrides(
                configFile: file, listen: ["[::1]:2222", "127.0.0.1:2222"], hostKeys: ["/k/two"], authorizedKeys: ["/a/two"],
                tcpmux: ["[::1]:1"]))
        #expect(c.listen.map(\.description) == ["127.0.0.1:2222", "[::1]:2222"])
        #expect(c.hostKeys == ["/k/one", "/k/two"])
        #expect(c.authorizedKeys == ["/a/one", "/a/two"])
        #expect(c.tcpmux.map(\.description) == ["127.0.0.1:1", "[::1]:1"])
    }

    @Test func defaultsApplyPerListOnlyWhenNothingIsGiven() throws {
        let c = try ConfigurationLoader.load(ConfigurationOverrides(listen: ["127.0.0.1:0"]))
        #expect(c.listen == [ListenAddress(host: "127.0.0.1", port: 0)])
        #expect(c.hostKeys == Configuration.defaultHostKeys)
        #expect(c.authorizedKeys == Configuration.defaultAuthorizedKeys)

        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = try dir.write("fived.toml", "host_keys = [\"/k\"]\nlisten = []\n")
        let d = try ConfigurationLoader.load(ConfigurationOverrides(configFile: file))
        #expect(d.hostKeys == ["/k"])
        #expect(d.listen == Configuration.defaultListen)
    }

    @Test func serviceFlagReplacesTheFileServiceOfTheSameName() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = try dir.write(
            "fived.toml",
            """
            [services.web]
            connect = "127.0.0.1:8080"
            proxy_protocol = true
            allow = ["user:bob"]

            [services.echo]
            exec = ["/bin/cat"]
            """)
        let c = try ConfigurationLoader.load(
            ConfigurationOverrides(configFile: file, services: ["WEB=unix:/run/web.sock", "rsync=exec:/usr/bin/rsync --daemon"]),
            isExecutable: allExecutable)
        #expect(c.sortedServices.map(\.name.value) == ["echo", "rsync", "web"])
        let web = try #require(c.services[name("web")])
        #expect(web == ServiceConfig(name: name("web"), backend: .unix(path: "/run/web.sock"), origin: "--service"))
        #expect(c.services[name("echo")]?.origin == file)
        #expect(c.services[name("rsync")]?.backend == .exec(argv: ["/usr/bin/rsync", "--daemon"]))
    }

    @Test func logLevelFlagWins() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = try dir.write("fived.toml", "log_level = \"error\"\n")
        #expect(try ConfigurationLoader.load(ConfigurationOverrides(configFile: file)).logLevel == .error)
        #expect(try ConfigurationLoader.load(ConfigurationOverrides(configFile: file, logLevel: "trace")).logLevel == .trace)
        #expect(try ConfigurationLoader.load(ConfigurationOverrides(logLevel: "Warning")).logLevel == .warning)
    }

    @Test func execProgramsAreCheckedThroughIsExecutable() throws {
        var asked: [String] = []
        _ = try ConfigurationLoader.load(
            ConfigurationOverrides(services: ["a=exec:/opt/a -x", "b=tcp:127.0.0.1:9"]),
            isExecutable: {
                asked.append($0); return true
            })
        #expect(asked == ["/opt/a"])
    }

    @Test func missingProgramFromAFlagNamesTheFlag() throws {
        let e = try #require(
            thrown {
                _ = try ConfigurationLoader.load(ConfigurationOverrides(services: ["echo=exec:/bin/nope"]))
            })
        #expect(e.code == .invalidBackend)
        #expect(e.message == "--service echo: program /bin/nope does not exist or is not executable")
    }

    @Test func longProgramPathsAreShownWhole() throws {
        let program = "/nix/store/" + String(repeating: "0123456789abcdef", count: 8) + "-rsync-3.2.7/bin/rsync"
        let e = try #require(
            thrown {
                _ = try ConfigurationLoader.load(ConfigurationOverrides(services: ["rsync=exec:\(program) --daemon"]), isExecutable: { _ in false })
            })
        #expect(e.message == "--service rsync: program \(program) does not exist or is not executable")
    }

    @Test func missingProgramFromTheFileNamesFileLineAndKey() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = try dir.write("fived.toml", "[services.web]\nconnect = \"127.0.0.1:80\"\n\n[services.Echo]\nexec = [\"/bin/nope\", \"-u\"]\n")
        let e = try #require(
            thrown {
                _ = try ConfigurationLoader.load(ConfigurationOverrides(configFile: file), isExecutable: { $0 != "/bin/nope" })
            })
        #expect(e.code == .invalidBackend)
        #expect(e.message == "\(file):5: services.Echo.exec: program /bin/nope does not exist or is not executable")
    }

    @Test func defaultIsExecutableLooksAtTheFileSystem() throws {
        #expect(ConfigurationLoader.defaultIsExecutable("/bin/sh"))
        #expect(!ConfigurationLoader.defaultIsExecutable("/bin/nope-\(UInt32.random(in: 0...UInt32.max))"))
        #expect(!ConfigurationLoader.defaultIsExecutable("/"))
        let dir = try TempDirectory()
        defer { dir.remove() }
        let plain = try dir.write("plain", "#!/bin/sh\n")
        #expect(!ConfigurationLoader.defaultIsExecutable(plain))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: plain)
        #expect(ConfigurationLoader.defaultIsExecutable(plain))
    }

    @Test func missingFileIsNamed() throws {
        let e = try #require(
            thrown {
                _ = try ConfigurationLoader.load(ConfigurationOverrides(configFile: "/nonexistent/fived.toml"))
            })
        #expect(e.code == .configUnreadable)
        #expect(e.message == "/nonexistent/fived.toml: cannot read the config file: No such file or directory")
    }

    @Test func directoryIsNotAConfigFile() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let e = try #require(thrown { _ = try ConfigurationLoader.load(ConfigurationOverrides(configFile: dir.path)) })
        #expect(e.code == .configUnreadable)
        #expect(e.message == "\(dir.path): cannot read the config file: it is a directory")
    }

    @Test func nonUTF8FileIsNamed() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = dir.path + "/latin1.toml"
        try Data([0x6C, 0x6F, 0x67, 0x20, 0x3D, 0x20, 0x22, 0xE9, 0x22, 0x0A]).write(to: URL(fileURLWithPath: file))
        let e = try #require(thrown { _ = try ConfigurationLoader.load(ConfigurationOverrides(configFile: file)) })
        #expect(e.code == .configSyntax)
        #expect(e.message == "\(file): the config file is not UTF-8 text")
    }

    @Test func fileErrorsNameTheFilePathGiven() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = try dir.write("fived.toml", "listen = [\"0.0.0.0:1\"]\n[services.web]\nconect = \"127.0.0.1:80\"\n")
        let e = try #require(thrown { _ = try ConfigurationLoader.load(ConfigurationOverrides(configFile: file)) })
        #expect(e.code == .configUnknownKey)
        #expect(e.message == "\(file):3: unknown key 'services.web.conect' (did you mean 'connect'?)")
    }

    // MARK: Bad flags

    @Test(arguments: [
        (ConfigurationOverrides(listen: ["::1:22"]), FivedCoreError.Code.invalidListenAddress, "--listen: '::1:22' looks like a bare IPv6 address"),
        (ConfigurationOverrides(tcpmux: ["localhost"]), .invalidListenAddress, "--tcpmux: 'localhost' has no port"),
        (ConfigurationOverrides(hostKeys: [""]), .configInvalidValue, "--host-key: '' is not a file name"),
        (ConfigurationOverrides(authorizedKeys: ["/keys/%i"]), .configInvalidValue, "--authorized-keys: '/keys/%i' has '%i'"),
        (ConfigurationOverrides(services: ["web"]), .invalidFlag, "--service 'web': expected NAME=BACKEND, e.g. web=tcp:127.0.0.1:8080"),
        (ConfigurationOverrides(services: ["bad name=tcp:127.0.0.1:80"]), .invalidServiceName, "--service: invalid service name 'bad name'"),
        (ConfigurationOverrides(services: ["=tcp:127.0.0.1:80"]), .invalidServiceName, "--service: invalid service name ''"),
        (ConfigurationOverrides(services: ["web=tcp:127.0.0.1"]), .invalidBackend, "--service web: '127.0.0.1' has no port"),
        (ConfigurationOverrides(services: ["web=127.0.0.1:80"]), .invalidBackend, "--service web: backend '127.0.0.1:80' is not tcp:HOST:PORT"),
        (ConfigurationOverrides(services: ["Help=tcp:127.0.0.1:80"]), .invalidServiceName, "--service help: 'help' is reserved"),
        (
            ConfigurationOverrides(services: ["status=tcp:127.0.0.1:80"]), .invalidServiceName,
            "--service status: 'status' is the built-in status table: set who may open it with allow in [services.status]"
        ),
        (ConfigurationOverrides(services: ["web=tcp:127.0.0.1:80", "Web=tcp:127.0.0.1:81"]), .invalidFlag, "--service web: given twice"),
        (
            ConfigurationOverrides(logLevel: "loud"), .invalidFlag,
            "--log-level: 'loud' is not a log level: use one of trace, debug, info, warning, error"
        ),
        (ConfigurationOverrides(logLevel: ""), .invalidFlag, "--log-level: '' is not a log level"),
    ])
    func badFlagsAreNamed(_ overrides: ConfigurationOverrides, _ code: FivedCoreError.Code, _ prefix: String) throws {
        let e = try #require(thrown { _ = try ConfigurationLoader.load(overrides, isExecutable: allExecutable) })
        #expect(e.code == code)
        #expect(e.message.hasPrefix(prefix), "\(e.message)")
    }

    @Test func serviceFlagMayContainEqualsInItsBackend() throws {
        let c = try ConfigurationLoader.load(
            ConfigurationOverrides(services: ["env=exec:/usr/bin/env A=1"]), isExecutable: allExecutable)
        #expect(c.services[name("env")]?.backend == .exec(argv: ["/usr/bin/env", "A=1"]))
    }

    @Test(arguments: [
        (["0.0.0.0:1"], [], "--tcpmux: 0.0.0.0:1 would share a port with the SSH listener 0.0.0.0:1"),
        (["127.0.0.1:1"], [], "--tcpmux: 127.0.0.1:1 would share a port with the SSH listener 0.0.0.0:1"),
        (["[::1]:1"], [], "--tcpmux: [::1]:1 would share a port with the SSH listener [::]:1"),
        (["0.0.0.0:22"], ["127.0.0.1:22"], "--tcpmux: 0.0.0.0:22 would share a port with the SSH listener 127.0.0.1:22"),
    ])
    func tcpmuxListenerMustNotCollideWithSSH(_ tcpmux: [String], _ listen: [String], _ prefix: String) throws {
        let e = try #require(
            thrown {
                _ = try ConfigurationLoader.load(ConfigurationOverrides(listen: listen, tcpmux: tcpmux))
            })
        #expect(e.code == .invalidListenAddress)
        #expect(e.message.hasPrefix(prefix))
    }

    @Test func tcpmuxOnOtherPortsOrAddressesIsFine() throws {
        let c = try ConfigurationLoader.load(
            ConfigurationOverrides(listen: ["127.0.0.1:1", "127.0.0.1:0"], tcpmux: ["127.0.0.2:1", "127.0.0.1:0", "[::1]:1"]))
        #expect(c.tcpmux.count == 3)
    }

    @Test func collidingTCPMUXFromTheFileNamesTheFile() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = try dir.write("fived.toml", "\ntcpmux = [\"[::]:1\"]\n")
        let e = try #require(thrown { _ = try ConfigurationLoader.load(ConfigurationOverrides(configFile: file)) })
        #expect(e.message.hasPrefix("\(file):2: tcpmux: [::]:1 would share a port with the SSH listener [::]:1"))
    }
}

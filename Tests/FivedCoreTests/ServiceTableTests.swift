import Testing

@testable import FivedCore

@Suite struct ServiceTableTests {
    private func name(_ raw: String) -> ServiceName { ServiceName(raw)! }

    private func sample() throws -> Configuration {
        var c = Configuration(
            listen: [ListenAddress(host: "0.0.0.0", port: 1), ListenAddress(host: "::1", port: 2222)],
            hostKeys: ["/etc/fived/ssh_host_ed25519_key"],
            authorizedKeys: ["%h/.ssh/authorized_keys"],
            statusAllow: [try AllowRule(parsing: "user:root", context: "test")])
        c.services[name("web")] = ServiceConfig(
            name: name("web"), backend: .tcp(host: "127.0.0.1", port: 8080), proxyProtocol: true,
            allow: [try AllowRule(parsing: "alice@laptop", context: "test"), try AllowRule(parsing: "user:bob", context: "test")],
            origin: "fived.toml")
        c.services[name("echo")] = ServiceConfig(
            name: name("echo"), backend: .exec(argv: ["/bin/cat"]), tcpmux: true, origin: "--service")
        c.services[name("echo")]!.pty = true
        c.services[name("private")] = ServiceConfig(
            name: name("private"), backend: .unix(path: "/run/p.sock"), allow: [], origin: "fived.toml")
        return c
    }

    @Test func rendersAlignedSortedRows() throws {
        let text = ServiceTable.render(try sample())
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(
            Array(lines.prefix(7)) == [
                "NAME     BACKEND             PROXY  TCPMUX  PTY  ALLOW",
                "echo     exec:/bin/cat       no     yes     yes  (any key)",
                "help     (built-in)          no     no      no   (any key)",
                "metrics  (built-in)          no     no      no   (nobody)",
                "private  unix:/run/p.sock    no     no      no   (nobody)",
                "status   (built-in)          no     no      no   user:root",
                "web      tcp:127.0.0.1:8080  yes    no      no   alice@laptop, user:bob",
            ])
        #expect(text.hasSuffix("\n"))
        #expect(!lines.contains { $0.hasSuffix(" ") })
    }

    @Test func listsListenersFilesAndLimits() throws {
        let text = ServiceTable.render(try sample())
        #expect(text.contains("\nlisten: 0.0.0.0:1, [::1]:2222\n"))
        #expect(text.contains("\ntcpmux: (none)\n"))
        #expect(text.contains("\nhost keys: /etc/fived/ssh_host_ed25519_key\n"))
        #expect(text.contains("\nauthorized_keys: %h/.ssh/authorized_keys\n"))
        #expect(text.contains("\nlog level: info\n"))
        #expect(text.contains("\nmetrics_listen: (none)\n"))
        #expect(
            text.contains(
                "\nlimits: login_grace_seconds=30 max_startups=256 max_startups_per_source=16 max_startups_per_source_prefix6=64 max_channels_per_connection=1024 max_connections_per_key=256 max_channels_per_key=4096 connect_timeout_seconds=10\n"
            ))
    }

    @Test func notesTCPMUXServicesWithoutAListener() throws {
        var c = try sample()
        #expect(ServiceTable.render(c).contains("note: tcpmux = true on echo, but there is no tcpmux listener"))
        c.tcpmux = [ListenAddress(host: "127.0.0.1", port: 1)]
        let text = ServiceTable.render(c)
        #expect(!text.contains("no tcpmux listener"))
        #expect(text.contains("\ntcpmux: 127.0.0.1:1\n"))
    }

    @Test func notesAStatusTableNobodyMayOpen() {
        let text = ServiceTable.render(Configuration().withDefaults())
        #expect(
            text.hasPrefix(
                """
                NAME     BACKEND     PROXY  TCPMUX  PTY  ALLOW
                help     (built-in)  no     no      no   (any key)
                metrics  (built-in)  no     no      no   (nobody)
                status   (built-in)  no     no      no   (nobody)

                """))
        #expect(text.contains("note: status has no allow list, so nobody may open it"))
    }

    @Test func escapesControlCharactersInAllowEntries() throws {
        var c = Configuration()
        c.statusAllow = [try AllowRule(parsing: "evil\u{1b}[2J", context: "test")]
        let text = ServiceTable.render(c)
        #expect(text.contains("evil\\x1b[2J"))
        #expect(!text.contains("\u{1b}"))
    }
}

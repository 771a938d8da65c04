import Testing

@testable import FivedCore

@Suite struct ForwardSpecTests {
    @Test func localPortAndServiceBindLoopback() throws {
        let f = try LocalForward(parsing: "8080:web")
        #expect(f.bind == .tcp(host: "127.0.0.1", port: 8080))
        #expect(f.service == ServiceName("web"))
    }

    @Test func localWithBindAddress() throws {
        #expect(try LocalForward(parsing: "0.0.0.0:5432:db").bind == .tcp(host: "0.0.0.0", port: 5432))
        #expect(try LocalForward(parsing: "*:5432:db").bind == .tcp(host: "0.0.0.0", port: 5432))
        #expect(try LocalForward(parsing: ":5432:db").bind == .tcp(host: "0.0.0.0", port: 5432))
        #expect(try LocalForward(parsing: "[::1]:5432:db").bind == .tcp(host: "::1", port: 5432))
        #expect(try LocalForward(parsing: "localhost:0:db").bind == .tcp(host: "localhost", port: 0))
    }

    @Test func localAcceptsSshStyleTrailingPort() throws {
        let a = try LocalForward(parsing: "8080:web:1")
        #expect(a.bind == .tcp(host: "127.0.0.1", port: 8080))
        #expect(a.service == ServiceName("web"))
        let b = try LocalForward(parsing: "127.0.0.2:8080:web:1")
        #expect(b.bind == .tcp(host: "127.0.0.2", port: 8080))
    }

    @Test func localUnixSocket() throws {
        let f = try LocalForward(parsing: "/run/user/1000/db.sock:postgres")
        #expect(f.bind == .unix(path: "/run/user/1000/db.sock"))
        #expect(f.service == ServiceName("postgres"))
        #expect(try LocalForward(parsing: "./x.sock:db").bind == .unix(path: "./x.sock"))
    }

    @Test(arguments: ["web", "8080", "99999:web", "abc:web", "8080:bad name", "8080:", "/tmp/s.sock:", "1:2:3:4:5", "[::1:80:web"])
    func localRejects(_ raw: String) {
        #expect(throws: FivedCoreError.self) { try LocalForward(parsing: raw) }
    }

    @Test func localErrorNamesTheFlagAndTheForm() throws {
        let error = try #require(thrown { _ = try LocalForward(parsing: "nonsense") })
        #expect(error.code == .invalidForwardSpec)
        #expect(error.message.contains("-L 'nonsense'"))
        #expect(error.message.contains("[BIND:]PORT:SERVICE"))
    }

    @Test func remoteTcpTarget() throws {
        let f = try RemoteForward(parsing: "laptopweb:localhost:8080")
        #expect(f.name == ServiceName("laptopweb"))
        #expect(f.target == .tcp(host: "localhost", port: 8080))
        #expect(try RemoteForward(parsing: "w:[::1]:80").target == .tcp(host: "::1", port: 80))
    }

    @Test func remoteSshStyleWithPortAfterName() throws {
        let f = try RemoteForward(parsing: "laptopweb:1:localhost:8080")
        #expect(f.target == .tcp(host: "localhost", port: 8080))
        #expect(try RemoteForward(parsing: "w:1:/run/app.sock").target == .unix(path: "/run/app.sock"))
    }

    @Test func remoteUnixTarget() throws {
        let f = try RemoteForward(parsing: "app:/run/app.sock")
        #expect(f.target == .unix(path: "/run/app.sock"))
    }

    @Test(arguments: ["laptopweb", "bad name:localhost:80", "w:localhost", "w:localhost:0", "w::80", "w:h:p", ":localhost:80"])
    func remoteRejects(_ raw: String) {
        #expect(throws: FivedCoreError.self) { try RemoteForward(parsing: raw) }
    }
}

/// Inputs the forward_spec fuzzer found: a bracket inside a field is not a host.
@Test(
    "brackets only wrap a whole field; an all-digit bind address is refused",
    arguments: ["web:[[]:32", "web:a[b]:80", "web:[a]b:80", "9[::1]:80:web", "[]:80:web", "web:[]:80", "32:0:2:32", "e:[/]:1", "[/]:80:web"])
func misplacedBrackets(_ spec: String) {
    let local = try? LocalForward(parsing: spec)
    let remote = try? RemoteForward(parsing: spec)
    #expect(local == nil && remote == nil, "\(spec) parsed as \(String(describing: local)) / \(String(describing: remote))")
}

import Testing

@testable import FivedCore

@Suite struct ListenAddressTests {
    @Test(arguments: [
        ("127.0.0.1:22", "127.0.0.1", UInt16(22), "127.0.0.1:22"),
        ("0.0.0.0:1", "0.0.0.0", 1, "0.0.0.0:1"),
        ("[::1]:2222", "::1", 2222, "[::1]:2222"),
        ("[::]:1", "::", 1, "[::]:1"),
        ("[fe80::1%eth0]:22", "fe80::1%eth0", 22, "[fe80::1%eth0]:22"),
        ("[::ffff:192.0.2.1]:80", "::ffff:192.0.2.1", 80, "[::ffff:192.0.2.1]:80"),
        ("[2001:db8:0:0:0:0:0:1]:443", "2001:db8:0:0:0:0:0:1", 443, "[2001:db8:0:0:0:0:0:1]:443"),
        ("localhost:2222", "localhost", 2222, "localhost:2222"),
        ("host-1.example.org:65535", "host-1.example.org", 65535, "host-1.example.org:65535"),
        ("127.0.0.1:0", "127.0.0.1", 0, "127.0.0.1:0"),
    ])
    func parses(_ raw: String, _ host: String, _ port: UInt16, _ shown: String) throws {
        let address = try ListenAddress(parsing: raw, context: "--listen")
        #expect(address.host == host)
        #expect(address.port == port)
        #expect(address.description == shown)
        #expect(try ListenAddress(parsing: address.description, context: "round trip") == address)
    }

    @Test(arguments: [
        ("::1:2222", "brackets"),
        ("::1", "brackets"),
        ("127.0.0.1", "no port"),
        ("localhost", "no port"),
        (":22", "no host"),
        ("[::1]", "no port"),
        ("[::1]2222", "no port"),
        ("[::1:2222", "without ']'"),
        ("[127.0.0.1]:22", "not an IPv6 address"),
        ("[1:2:3:4:5:6:7:8:9]:22", "not an IPv6 address"),
        ("[1::2::3]:22", "not an IPv6 address"),
        ("[gggg::1]:22", "not an IPv6 address"),
        ("256.0.0.1:22", "not a host name or an IP address"),
        ("1.2.3:22", "not a host name or an IP address"),
        ("bad host:22", "not a host name or an IP address"),
        ("a..b:22", "not a host name or an IP address"),
        ("127.0.0.1:65536", "from 0 to 65535"),
        ("127.0.0.1:-1", "from 0 to 65535"),
        ("127.0.0.1:+22", "from 0 to 65535"),
        ("127.0.0.1:ssh", "from 0 to 65535"),
        ("127.0.0.1:", "from 0 to 65535"),
        ("127.0.0.1:000022", "from 0 to 65535"),
        ("", "no port"),
    ])
    func rejects(_ raw: String, _ reason: String) throws {
        let error = try #require(thrown { _ = try ListenAddress(parsing: raw, context: "--listen") })
        #expect(error.code == .invalidListenAddress)
        #expect(error.message.hasPrefix("--listen: '") && error.message.contains(reason), "\(error)")
    }

    @Test func messageNamesTheContextAndTheText() {
        #expect {
            try ListenAddress(parsing: "::1:2222", context: "fived.toml:2: listen[1]")
        } throws: { error in
            (error as! FivedCoreError).message
                == "fived.toml:2: listen[1]: '::1:2222' looks like a bare IPv6 address: put it in brackets, e.g. [::1]:PORT"
        }
    }
}

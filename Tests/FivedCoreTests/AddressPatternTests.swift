import Testing
@testable import FivedCore

@Suite struct AddressPatternTests {
    static let cases: [(pattern: String, address: String, admitted: Bool)] = [
        // literal addresses and CIDR
        ("10.1.2.3", "10.1.2.3", true),
        ("10.1.2.3", "10.1.2.4", false),
        ("10.0.0.0/8", "10.200.1.1", true),
        ("10.0.0.0/8", "11.0.0.1", false),
        ("192.168.1.0/24", "192.168.1.255", true),
        ("192.168.1.0/24", "192.168.2.0", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("0.0.0.0/0", "2001:db8::1", false),  // families never mix
        ("10.1.2.3/32", "10.1.2.3", true),
        ("172.16.0.0/12", "172.31.255.255", true),
        ("172.16.0.0/12", "172.32.0.0", false),
        // IPv6
        ("2001:db8::/32", "2001:db8:1::5", true),
        ("2001:db8::/32", "2001:db9::1", false),
        ("2001:DB8::1", "2001:db8::1", true),
        ("2001:db8:0:0::1", "2001:db8::1", true),
        ("::1", "::1", true),
        ("::/0", "fe80::1", true),
        ("[::1]", "::1", false),  // brackets make it a wildcard pattern, as in sshd
        // IPv4-mapped clients are IPv4
        ("10.0.0.0/8", "::ffff:10.9.8.7", true),
        ("10.9.8.7", "::ffff:10.9.8.7", true),
        ("10.9.8.*", "::ffff:10.9.8.7", true),
        ("11.0.0.0/8", "::ffff:10.9.8.7", false),
        // An IPv4-mapped entry is an IPv6 network: sshd's addr_pton keeps it so, and
        // clients are IPv4 by then, so it matches none (checked against a real sshd
        // in AuthorizedKeysParityTests).
        ("::ffff:10.0.0.0/104", "10.1.1.1", false),
        ("::ffff:10.0.0.0/104", "11.1.1.1", false),
        ("::ffff:10.1.1.1", "10.1.1.1", false),
        ("::ffff:10.1.1.1", "::ffff:10.1.1.1", false),
        // wildcards
        ("*", "10.1.2.3", true),
        ("*", "::1", true),
        ("10.1.2.*", "10.1.2.3", true),
        ("10.1.2.*", "10.1.3.3", false),
        ("10.1.?.3", "10.1.9.3", true),
        ("10.1.?.3", "10.1.19.3", false),
        ("*.3", "10.1.2.3", true),
        ("2001:db8::*", "2001:db8::abcd", true),
        ("*.example.com", "10.1.2.3", false),  // no DNS
        ("**", "1.2.3.4", true),
        ("?", "1.2.3.4", false),
        // lists, negation wins wherever it is
        ("10.0.0.0/8,192.168.0.0/16", "192.168.5.5", true),
        ("10.0.0.0/8,192.168.0.0/16", "172.16.0.1", false),
        ("!10.0.0.5,10.0.0.0/8", "10.0.0.5", false),
        ("10.0.0.0/8,!10.0.0.5", "10.0.0.5", false),
        ("10.0.0.0/8,!10.0.0.5", "10.0.0.6", true),
        ("*,!10.0.0.0/8", "10.3.3.3", false),
        ("*,!10.0.0.0/8", "11.3.3.3", true),
        ("!10.0.0.0/8", "11.3.3.3", false),  // a negation alone admits nobody
        ("*,!10.*", "10.1.1.1", false),
        ("*,!2001:db8::/32", "2001:db8::1", false),
        ("*,!2001:db8::/32", "::ffff:10.0.0.1", true),
        // a CIDR with a bad suffix is a wildcard pattern instead, as in sshd
        ("10.0.0.0/", "10.0.0.0/", true),
        ("10.0.0.0/x", "10.0.0.1", false),
    ]

    @Test(arguments: cases)
    func matches(pattern: String, address: String, admitted: Bool) throws {
        let p = try AddressPattern(parsing: pattern, context: "test")
        #expect(p.matches(address: address) == admitted, "\(pattern) vs \(address)")
    }

    @Test func hostNamesMatchOnlyAsText() throws {
        // Not a numeric address: only the wildcard pass sees it, as a host name would be.
        let p = try AddressPattern(parsing: "*.example.com", context: "t")
        #expect(p.matches(address: "host.example.com"))
        #expect(!p.matches(address: "host.example.org"))
        let upper = try AddressPattern(parsing: "HOST.example.com", context: "t")
        #expect(upper.matches(address: "host.example.com"))
    }

    @Test(arguments: [
        "", ",", "10.0.0.0/8,", ",10.0.0.0/8", "!", "10.0.0.0/8,,10.1.0.0/16", "10.0.0.0/33", "10.0.0.1/8",
        "2001:db8::1/32", "::/129", "!10.0.0.0/40",
    ])
    func rejectsWhatSshdRejects(pattern: String) {
        #expect(throws: FivedCoreError.self) { try AddressPattern(parsing: pattern, context: "keys:1") }
    }

    @Test func errorNamesContext() throws {
        let error = try #require(thrown { _ = try AddressPattern(parsing: "10.0.0.1/8", context: "/etc/fived/authorized_keys:7") })
        #expect(error.code == .authorizedKeyMalformed)
        #expect(error.message.hasPrefix("/etc/fived/authorized_keys:7: "))
        #expect(error.message.contains("10.0.0.1/8"))
    }

    @Test func longEntriesAreRejectedAndHostilePatternsAreFast() throws {
        #expect(throws: FivedCoreError.self) { try AddressPattern(parsing: String(repeating: "*", count: 1024), context: "t") }
        let star = try AddressPattern(parsing: String(repeating: "*?", count: 500), context: "t")
        #expect(!star.matches(address: String(repeating: "1", count: 400)))
        #expect(star.matches(address: String(repeating: "1", count: 600)))
    }

    @Test func ipAddressParsing() {
        #expect(IPAddress("10.1.2.3") == .v4([10, 1, 2, 3]))
        #expect(IPAddress("::ffff:10.1.2.3") == .v4([10, 1, 2, 3]))
        #expect(IPAddress("[::1]")?.description == "::1")
        #expect(IPAddress("2001:DB8:0::1")?.description == "2001:db8::1")
        #expect(IPAddress("10.1.2") == nil)
        #expect(IPAddress("010.1.2.3") == nil)
        #expect(IPAddress("10.1.2.3.4") == nil)
        #expect(IPAddress("256.1.2.3") == nil)
        #expect(IPAddress("host") == nil)
        #expect(IPAddress("") == nil)
        #expect(IPAddress("fe80::1%eth0") == nil)
        #expect(IPAddress("1.2.3.4\u{0}") == nil)
        #expect(IPAddress(String(repeating: "1", count: 100)) == nil)
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(IPAddress.v4([1, 2, 3, 4]).mappedToV6 == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4])
    }
}

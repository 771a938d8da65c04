import Testing

@testable import FivedCore

@Suite struct KnownHostsFileTests {
    // ssh-keygen -t ed25519 public key blob (any valid one will do).
    static let key = "AAAAC3NzaC1lZDI1NTE5AAAAIGAdov2pLbc66sd0ecxMGRZOKsh0PMrUMnTMYfTNYWCi"

    @Test func plainBracketedAndPort22() throws {
        let text = """
            # comment
            [fived.example]:1 ssh-ed25519 \(Self.key)
            fived.example ssh-ed25519 \(Self.key)
            @revoked [fived.example]:1 ssh-ed25519 \(Self.key)
            other,[fived.example]:2222 ssh-ed25519 \(Self.key)
            """
        let one = KnownHostsFile.entries(in: text, hostName: "fived.example", port: 1)
        #expect(one.map(\.line) == [2])
        #expect(one.first?.fingerprint == PublicKeyBlob(base64: Self.key)?.fingerprint)
        #expect(KnownHostsFile.entries(in: text, hostName: "FIVED.example", port: 22).map(\.line) == [3])
        #expect(KnownHostsFile.entries(in: text, hostName: "fived.example", port: 2222).map(\.line) == [5])
    }

    @Test func wildcardsAndNegation() {
        let text = "*.example,!bad.example ssh-ed25519 \(Self.key)\n"
        #expect(KnownHostsFile.entries(in: text, hostName: "good.example", port: 22).count == 1)
        #expect(KnownHostsFile.entries(in: text, hostName: "bad.example", port: 22).isEmpty)
    }

    @Test func hashedHostNames() {
        // HMAC-SHA1 of "[127.0.0.1]:2399" keyed with this salt, as `ssh-keygen -H` writes it.
        let salt = "AAECAwQFBgcICQoLDA0ODxAREhM="
        let hash = "vcTopPqEOuQ1tUcpef5yO5vD9A8="
        let text = "|1|\(salt)|\(hash) ssh-ed25519 \(Self.key)\n"
        #expect(KnownHostsFile.entries(in: text, hostName: "127.0.0.1", port: 2399).count == 1)
        #expect(KnownHostsFile.entries(in: text, hostName: "127.0.0.1", port: 2398).isEmpty)
    }

    // A second, different ed25519 key.
    static let other = "AAAAC3NzaC1lZDI1NTE5AAAAIL4b6R24WcWMVN6kpRMyyUxM/tvCsZSUWc2PQ0lZuyKN"

    @Test func markersAsOpenSSHReadsThem() {
        let text = """
            @cert-authority *.example ssh-ed25519 \(Self.key) ca
            \t@revoked\tfived.example ssh-ed25519 \(Self.other)
            @revoked @cert-authority fived.example ssh-ed25519 \(Self.key)
            @bogus fived.example ssh-ed25519 \(Self.key)
            @revoked
            fived.example ssh-ed25519 \(Self.key)
            """
        let lines = KnownHostsFile.lines(in: text, hostName: "fived.example", port: 22)
        #expect(lines.map(\.line) == [1, 2, 6])
        #expect(lines.map(\.marker) == [.certificateAuthority, .revoked, .none])
        #expect(lines[0].fingerprint == PublicKeyBlob(base64: Self.key)?.fingerprint)
        #expect(lines[1].blob == PublicKeyBlob(base64: Self.other)?.bytes)
        // A CA line's key is never one of the host's own keys.
        #expect(KnownHostsFile.entries(in: text, hostName: "fived.example", port: 22).map(\.line) == [6])
        #expect(KnownHostsFile.entries(in: text, hostName: "other.example", port: 22).isEmpty)
        #expect(KnownHostsFile.lines(in: text, hostName: "other.example", port: 22).map(\.line) == [1])
    }

    @Test func aRevokedCertificateRevokesTheCertifiedKey() throws {
        let k = try Keygen()
        try k.key("ca")
        let user = try k.key("user")
        _ = try k.certify("user", ca: "ca", host: true)
        let line = try k.text("user-cert.pub").split(separator: " ").prefix(2).joined(separator: " ")
        let lines = KnownHostsFile.lines(in: "@revoked * \(line)\n", hostName: "h", port: 1)
        #expect(lines.count == 1)
        #expect(lines.first?.blob == user.bytes)
    }

    @Test func negationExcludesTheHostWhereLibsshWouldNot() {
        // libssh 0.10.6 tests "*" and "!bad.example" one by one (knownhosts.c:683-710)
        // and so matches bad.example; OpenSSH and fived-connect do not.
        let text = "*,!bad.example ssh-ed25519 \(Self.key)\n"
        #expect(KnownHostsFile.entries(in: text, hostName: "bad.example", port: 22).isEmpty)
        #expect(KnownHostsFile.entries(in: text, hostName: "good.example", port: 22).count == 1)
    }
}

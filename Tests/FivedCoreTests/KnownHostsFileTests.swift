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
}

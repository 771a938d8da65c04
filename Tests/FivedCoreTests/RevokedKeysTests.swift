import Foundation
import Testing
@testable import FivedCore

/// `revoked_keys` files: KRL or text, and failing closed as sshd's RevokedKeys does.
@Suite struct RevokedKeysTests {
    @Test func textListRevokesKeysCertifiedKeysAndCAs() throws {
        let k = try Keygen()
        let ca = try k.key("ca")
        let user = try k.key("user")
        let other = try k.key("other", type: "ecdsa")
        let cert = try k.certificate("user", ca: "ca")
        let text = """
            # revoked on 2026-11-01
            \(try k.text("other.pub"))
              \t
            ssh-dss AAAAB3NzaC1kc3MAAAAHc3NoLWRzcw== an old DSA key, skipped
            \(try k.text("user-cert.pub"))
            """
        let list = RevokedKeys(contents: Array(text.utf8), path: "/etc/fived/revoked")
        #expect(list.problem == nil && !list.isKRL)
        #expect(list.revocation(of: other) == .listedKey(fingerprint: other.fingerprint, isCA: false, location: "/etc/fived/revoked:2"))
        // a listed certificate revokes the key it certifies, plainly and in any certificate
        #expect(list.revocation(of: user) == .listedKey(fingerprint: user.fingerprint, isCA: false, location: "/etc/fived/revoked:6"))
        #expect(list.revocation(of: cert) == .listedKey(fingerprint: user.fingerprint, isCA: false, location: "/etc/fived/revoked:6"))
        #expect(list.revocation(of: ca) == nil)
        #expect(
            Revocation.listedKey(fingerprint: user.fingerprint, isCA: false, location: "/etc/fived/revoked:6").description
                == "revoked: key \(user.fingerprint) listed at /etc/fived/revoked:6")
        // the CA listed: every certificate it signed
        let caList = RevokedKeys(contents: try k.bytes("ca.pub"), path: "/r")
        #expect(caList.revocation(of: cert) == .listedKey(fingerprint: ca.fingerprint, isCA: true, location: "/r:1"))
        #expect(caList.revocation(of: user) == nil)
        // an empty file revokes nothing
        #expect(RevokedKeys(contents: [], path: "/r").revocation(of: user) == nil)
    }

    @Test func krlIsRecognisedByItsMagic() throws {
        let k = try Keygen()
        let user = try k.key("user")
        let list = RevokedKeys(contents: try k.krl("krl", ca: nil, spec: "key: \(try k.text("user.pub"))"), path: "/k")
        #expect(list.isKRL && list.problem == nil)
        #expect(list.revocation(of: user) == .krlKey(fingerprint: user.fingerprint, match: .key, isCA: false, file: "/k"))
    }

    @Test func unusableFilesRevokeEveryKey() throws {
        let user = TestKeys.alice.blob
        for (contents, message) in [
            ("not-a-type AAAA\n", "/r:1: the key is not of type not-a-type as the line says"),
            ("restrict \(TestKeys.alice.line)\n", "/r:1: the key after 'restrict' is not valid base64 (options are not allowed here)"),
            ("ssh-ed25519\n", "/r:1: 'ssh-ed25519' is not followed by a key (expected TYPE BASE64 [COMMENT], no options)"),
            ("\(TestKeys.alice.line)\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAAQA=\n", "/r:2: ssh-ed25519 key blob is malformed"),
            ("ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t\n", "/r:1: truncated nonce"),
            ("\(TestKeys.alice.line)\0\n", "/r:1: line contains a NUL byte"),
        ] {
            let list = RevokedKeys(contents: Array(contents.utf8), path: "/r")
            #expect(list.problem?.message == message)
            #expect(list.problem?.code == .revokedKeysMalformed)
            #expect(list.revocation(of: user) == .unusable(FivedCoreError(.revokedKeysMalformed, message)))
            #expect(list.revocation(of: TestKeys.bob.blob) != nil)
        }
        let krl = RevokedKeys(contents: KeyRevocationList.magic + [0, 0], path: "/k")
        #expect(krl.revocation(of: user)?.description == "every key refused: revoked_keys unusable: /k: KRL header is truncated")
        let missing = RevokedKeys.unreadable(path: "/r", reason: "Permission denied")
        #expect(missing.revocation(of: user)?.description == "every key refused: revoked_keys unusable: /r: Permission denied")
        let big = RevokedKeys(contents: [UInt8](repeating: 0x23, count: RevokedKeys.maximumFileSize + 1), path: "/r")
        #expect(big.problem?.message == "/r: larger than 67108864 bytes")
    }

    @Test func theFirstRevokingFileAnswers() {
        let a = RevokedKeys(contents: Array("\(TestKeys.alice.line)\n".utf8), path: "/a")
        let b = RevokedKeys(contents: Array("\(TestKeys.alice.line)\n\(TestKeys.bob.line)\n".utf8), path: "/b")
        #expect([a, b].revocation(of: TestKeys.alice.blob) == .listedKey(fingerprint: TestKeys.alice.fingerprint, isCA: false, location: "/a:1"))
        #expect([a, b].revocation(of: TestKeys.bob.blob) == .listedKey(fingerprint: TestKeys.bob.fingerprint, isCA: false, location: "/b:2"))
        #expect([a, b].revocation(of: TestKeys.ed25519.blob) == nil)
        #expect([RevokedKeys]().revocation(of: TestKeys.bob.blob) == nil)
    }

    @Test func crlfAndBlankLines() throws {
        let list = RevokedKeys(contents: Array("\r\n\(TestKeys.bob.line)\r\n   # x\r\n".utf8), path: "/r")
        #expect(list.problem == nil)
        #expect(list.revocation(of: TestKeys.bob.blob) == .listedKey(fingerprint: TestKeys.bob.fingerprint, isCA: false, location: "/r:2"))
        #expect(list.revocation(of: TestKeys.alice.blob) == nil)
    }
}

import Foundation
import Testing
@testable import FivedCore

/// CA signatures made by the real ssh-keygen, verified, and refused when a
/// single byte changes or the algorithm is one fived does not accept.
@Suite struct SSHSignatureTests {
    struct CA: CustomTestStringConvertible, Sendable {
        var type: String
        var bits: Int?
        var algorithm: String?
        var expected: String
        var testDescription: String { "\(type)\(bits.map { "-\($0)" } ?? "") \(expected)" }
    }

    static let cas: [CA] = [
        CA(type: "ed25519", expected: "ssh-ed25519"),
        CA(type: "ecdsa", bits: 256, expected: "ecdsa-sha2-nistp256"),
        CA(type: "ecdsa", bits: 384, expected: "ecdsa-sha2-nistp384"),
        CA(type: "ecdsa", bits: 521, expected: "ecdsa-sha2-nistp521"),
        CA(type: "rsa", bits: 2048, expected: "rsa-sha2-512"),  // ssh-keygen's default for RSA CAs
        CA(type: "rsa", bits: 3072, algorithm: "rsa-sha2-256", expected: "rsa-sha2-256"),
        CA(type: "rsa", bits: 1024, algorithm: "rsa-sha2-512", expected: "rsa-sha2-512"),
    ]

    @Test(arguments: cas)
    func verifiesAndRefusesOneFlippedByte(ca: CA) throws {
        let k = try Keygen()
        try k.key("ca", type: ca.type, bits: ca.bits)
        try k.key("user")
        let raw = try k.certify("user", ca: "ca", algorithm: ca.algorithm)
        let cert = try OpenSSHCertificate(bytes: raw)
        #expect(cert.verifySignature() == .success(ca.expected))

        // the last byte of the blob is the signature's last byte
        var flipped = raw
        flipped[flipped.count - 1] ^= 0x01
        let bad = try OpenSSHCertificate(bytes: flipped)
        #expect(bad.verifySignature() == .failure(.invalid(algorithm: ca.expected)))

        // a byte of the signed part (the key ID's last byte): parses, never verifies
        var b = CertificateBuilder(cert)
        b.keyID[b.keyID.count - 1] ^= 0x01
        #expect(try OpenSSHCertificate(bytes: b.bytes).verifySignature() == .failure(.invalid(algorithm: ca.expected)))
    }

    @Test func sha1RSASignaturesAreRefused() throws {
        let k = try Keygen()
        try k.key("ca", type: "rsa", bits: 2048)
        try k.key("user")
        let cert = try k.certificate("user", ca: "ca", algorithm: "ssh-rsa")
        #expect(cert.verifySignature() == .failure(.algorithmNotAllowed("ssh-rsa")))
        #expect(
            SSHSignature.Failure.algorithmNotAllowed("ssh-rsa").description
                == "signature algorithm ssh-rsa (RSA with SHA-1) is refused, as by sshd's default CASignatureAlgorithms; sign with -t rsa-sha2-512")
    }

    @Test func malformedSignatureBlobs() throws {
        let k = try Keygen()
        let ca = try k.key("ca")
        let ecdsa = try k.key("ec", type: "ecdsa")
        try k.key("user")
        let cert = try k.certificate("user", ca: "ca")
        let data = Array(cert.signedBytes)
        func verify(_ blob: [UInt8], with key: PublicKeyBlob = ca) -> Result<String, SSHSignature.Failure> {
            SSHSignature.verify(blob, over: data, with: key)
        }
        var reader = WireReader(cert.signature)
        _ = reader.string()
        let sig = reader.string()!
        #expect(verify(TestKeys.sshString("ssh-ed25519") + TestKeys.sshString(sig)) == .success("ssh-ed25519"))
        #expect(verify(TestKeys.sshString("ssh-ed25519") + TestKeys.sshString(sig) + [0]) == .failure(.malformed("bytes after the ssh-ed25519 signature")))
        #expect(
            verify(TestKeys.sshString("ssh-ed25519") + TestKeys.sshString(Array(sig.dropLast())))
                == .failure(.malformed("an Ed25519 signature is 64 bytes, not 63")))
        #expect(verify(TestKeys.sshString("ssh-ed25519")) == .failure(.malformed("no signature after ssh-ed25519")))
        #expect(verify([]) == .failure(.malformed("no algorithm name")))
        #expect(
            verify(TestKeys.sshString("ecdsa-sha2-nistp256") + TestKeys.sshString(sig))
                == .failure(.wrongAlgorithm(signature: "ecdsa-sha2-nistp256", keyType: "ssh-ed25519")))
        #expect(
            verify(TestKeys.sshString("rsa-sha2-256") + TestKeys.sshString(sig)) == .failure(.wrongAlgorithm(signature: "rsa-sha2-256", keyType: "ssh-ed25519"))
        )
        #expect(
            verify(TestKeys.sshString("sk-ssh-ed25519@openssh.com") + TestKeys.sshString(sig) + [1, 0, 0, 0, 1])
                == .failure(.algorithmNotAllowed("sk-ssh-ed25519@openssh.com")))
        #expect(verify(TestKeys.sshString("ssh-dss") + TestKeys.sshString(sig)) == .failure(.algorithmNotAllowed("ssh-dss")))
        // ECDSA: r and s as mpints, nothing else
        let one = TestKeys.sshString([1])
        #expect(
            verify(TestKeys.sshString("ecdsa-sha2-nistp256") + TestKeys.sshString(one + one), with: ecdsa)
                == .failure(.invalid(algorithm: "ecdsa-sha2-nistp256")))
        #expect(
            verify(TestKeys.sshString("ecdsa-sha2-nistp256") + TestKeys.sshString(one + one + [0]), with: ecdsa)
                == .failure(.malformed("bytes after the ECDSA mpint s")))
        #expect(
            verify(TestKeys.sshString("ecdsa-sha2-nistp256") + TestKeys.sshString(one + TestKeys.sshString([0x80])), with: ecdsa)
                == .failure(.malformed("negative ECDSA mpint")))
        #expect(
            verify(TestKeys.sshString("ecdsa-sha2-nistp256") + TestKeys.sshString(one + TestKeys.sshString([UInt8](repeating: 1, count: 33))), with: ecdsa)
                == .failure(.malformed("ECDSA mpint wider than the curve")))
        #expect(
            verify(TestKeys.sshString("ecdsa-sha2-nistp256") + TestKeys.sshString(one), with: ecdsa)
                == .failure(.malformed("ECDSA signature is not mpint r, mpint s")))
        // RSA: a signature longer than the modulus
        #expect(
            verify(TestKeys.sshString("rsa-sha2-512") + TestKeys.sshString([UInt8](repeating: 1, count: 257)), with: TestKeys.rsa2048.blob)
                == .failure(.malformed("RSA signature longer than the modulus")))
        #expect(
            verify(TestKeys.sshString("rsa-sha2-512") + TestKeys.sshString([1, 2, 3]), with: TestKeys.rsa2048.blob)
                == .failure(.invalid(algorithm: "rsa-sha2-512")))
    }
}

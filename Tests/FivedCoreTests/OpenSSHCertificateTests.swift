import Foundation
import Testing
@testable import FivedCore

/// Parsing certificate blobs that the real ssh-keygen makes, and refusing every
/// way a blob can be malformed, without trapping.
@Suite struct OpenSSHCertificateTests {
    @Test func ed25519UserCertificateFields() throws {
        let k = try Keygen()
        let ca = try k.key("ca")
        let user = try k.key("user")
        let raw = try k.certify(
            "user", ca: "ca", id: "alice-laptop", principals: "alice,bob", validity: "20260101000000Z:20261129100000Z",
            serial: 42, options: ["force-command=web", "source-address=10.0.0.0/8,::1"])
        let cert = try OpenSSHCertificate(bytes: raw)
        #expect(cert.certificateType == "ssh-ed25519-cert-v01@openssh.com")
        #expect(cert.key == user)
        #expect(cert.signatureKey == ca)
        #expect(cert.caFingerprint == ca.fingerprint)
        #expect(cert.kind == .user)
        #expect(cert.serial == 42)
        #expect(cert.keyID == "alice-laptop")
        #expect(cert.principals == ["alice", "bob"])
        #expect(cert.validAfter == 1_767_225_600)  // 2026-01-01T00:00:00Z
        #expect(cert.validBefore == 1_795_946_400)  // 2026-11-29T10:00:00Z
        #expect(cert.criticalOptions.map(\.name) == ["force-command", "source-address"])
        #expect(cert.criticalOptions[0].data == CertificateBuilder.value("web"))
        #expect(
            cert.extensions.map(\.name) == [
                "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc",
            ])
        #expect(cert.nonce.count == 32)
        #expect(cert.reserved.isEmpty)
        #expect(cert.bytes == raw)
        #expect(Array(cert.signedBytes) == Array(raw[..<cert.signedLength]))
        #expect(try cert.verifySignature().get() == "ssh-ed25519")
        // ssh-keygen -l prints the certified key's fingerprint for a certificate
        let listed = try k.run(["-l", "-f", "user-cert.pub"])
        #expect(listed.contains(user.fingerprint))
        #expect(cert.description == "ssh-ed25519-cert-v01@openssh.com \(user.fingerprint) ID \"alice-laptop\" serial 42 CA \(ca.fingerprint)")
    }

    @Test(
        arguments: [
            ("ed25519", nil, "ssh-ed25519-cert-v01@openssh.com"),
            ("ecdsa", 256, "ecdsa-sha2-nistp256-cert-v01@openssh.com"),
            ("ecdsa", 384, "ecdsa-sha2-nistp384-cert-v01@openssh.com"),
            ("ecdsa", 521, "ecdsa-sha2-nistp521-cert-v01@openssh.com"),
            ("rsa", 2048, "ssh-rsa-cert-v01@openssh.com"),
        ] as [(String, Int?, String)])
    func everyCertifiedKeyType(type: String, bits: Int?, certificateType: String) throws {
        let k = try Keygen()
        try k.key("ca")
        let user = try k.key("user", type: type, bits: bits)
        let cert = try k.certificate("user", ca: "ca")
        #expect(cert.certificateType == certificateType)
        #expect(cert.key == user)
        #expect(cert.principals == ["alice"])
        #expect(cert.validAfter == 0 && cert.validBefore == UInt64.max)
        #expect(cert.verifySignature() == .success("ssh-ed25519"))
        // the -cert.pub line parses the same
        let line = try k.text("user-cert.pub")
        #expect(try OpenSSHCertificate(line: line, context: "user-cert.pub:1") == cert)
    }

    @Test func hostCertificateAndSerial() throws {
        let k = try Keygen()
        try k.key("ca")
        try k.key("host")
        let cert = try k.certificate("host", ca: "ca", id: "web1", principals: "web1.example", serial: 7, host: true)
        #expect(cert.kind == .host)
        #expect(cert.serial == 7)
        #expect(cert.extensions.isEmpty)  // ssh-keygen gives host certificates no extensions
    }

    @Test func unknownOptionsAndExtensionsAreKeptInOrder() throws {
        let k = try Keygen()
        try k.key("ca")
        try k.key("user")
        let cert = try k.certificate("user", ca: "ca", options: ["clear", "critical:verify-foo=bar", "extension:zzz@example.com=1", "permit-pty"])
        #expect(cert.criticalOptions == [.init(name: "verify-foo", data: CertificateBuilder.value("bar"))])
        #expect(cert.extensions.map(\.name) == ["permit-pty", "zzz@example.com"])
        #expect(cert.extensions[1].description == "zzz@example.com=<5 bytes>")
    }

    @Test func optionsMustBeSortedAndUnique() throws {
        let k = try Keygen()
        try k.key("ca")
        try k.key("user")
        let real = try k.certificate("user", ca: "ca")
        var b = CertificateBuilder(real)
        #expect(try OpenSSHCertificate(bytes: b.bytes) == real)  // the builder round-trips

        b.extensions.swapAt(0, 1)
        #expect(throws: FivedCoreError(.certificateMalformed, "certificate: extensions are not sorted by name (permit-X11-forwarding comes too late)")) {
            try OpenSSHCertificate(bytes: b.bytes)
        }
        b = CertificateBuilder(real)
        b.extensions.insert(b.extensions[2], at: 2)
        #expect(throws: FivedCoreError(.certificateMalformed, "certificate: extensions: permit-port-forwarding appears twice")) {
            try OpenSSHCertificate(bytes: b.bytes)
        }
        b = CertificateBuilder(real)
        b.critical = [("source-address", CertificateBuilder.value("10.0.0.0/8")), ("force-command", CertificateBuilder.value("web"))]
        #expect(throws: FivedCoreError(.certificateMalformed, "certificate: critical options are not sorted by name (force-command comes too late)")) {
            try OpenSSHCertificate(bytes: b.bytes)
        }
        // "a" < "b" < "ba" by bytes: sorted, accepted
        b = CertificateBuilder(real)
        b.extensions = [("a", []), ("b", []), ("ba", []), ("permit-X11-forwarding", []), ("permit-agent-forwarding", [])]
        #expect(try OpenSSHCertificate(bytes: b.bytes).extensions.count == 5)
    }

    @Test func structuralRefusals() throws {
        let k = try Keygen()
        try k.key("ca")
        try k.key("user")
        let real = try k.certificate("user", ca: "ca")
        func message(_ bytes: [UInt8]) -> String? {
            do {
                _ = try OpenSSHCertificate(bytes: bytes, context: "test")
                return nil
            } catch {
                return error.message
            }
        }
        var b = CertificateBuilder(real)
        b.trailing = [0]
        #expect(message(b.bytes) == "test: 1 bytes after the signature")
        b = CertificateBuilder(real)
        b.kind = 3
        #expect(message(b.bytes) == "test: certificate type 3 is neither user (1) nor host (2)")
        b = CertificateBuilder(real)
        b.keyID = Array("a\0b".utf8)
        #expect(message(b.bytes) == "test: truncated key ID or key ID with a NUL byte")
        b = CertificateBuilder(real)
        b.principals = [[0xFF]]
        #expect(message(b.bytes) == "test: a principal is not UTF-8")
        b = CertificateBuilder(real)
        b.principals = (0...256).map { Array("p\($0)".utf8) }
        #expect(message(b.bytes) == "test: more than 256 principals")
        b.principals.removeLast()
        #expect(message(b.bytes) == nil)
        b = CertificateBuilder(real)
        b.type = "ssh-ed25519"
        #expect(message(b.bytes) == "test: ssh-ed25519 is not a certificate type")
        b = CertificateBuilder(real)
        b.type = "ssh-dss-cert-v01@openssh.com"
        #expect(message(b.bytes) == "test: certificate type ssh-dss-cert-v01@openssh.com is not supported")
        b = CertificateBuilder(real)
        b.type = "rsa-sha2-256-cert-v01@openssh.com"  // an algorithm name, never a blob type
        #expect(message(b.bytes) == "test: certificate type rsa-sha2-256-cert-v01@openssh.com is not supported")
        b = CertificateBuilder(real)
        b.type = "ecdsa-sha2-nistp256-cert-v01@openssh.com"  // ed25519 fields under an ECDSA type
        #expect(message(b.bytes)?.hasPrefix("test: ") == true)
        b = CertificateBuilder(real)
        b.signatureKey = real.bytes  // a chained certificate
        #expect(message(b.bytes) == "test: the CA key is itself a certificate (chained certificates are not supported)")
        b = CertificateBuilder(real)
        b.signatureKey = TestKeys.sshString("ssh-dss") + TestKeys.sshString([1])
        #expect(message(b.bytes) == "test: CA key type ssh-dss is not supported")
        b = CertificateBuilder(real)
        b.critical = [("force-command", [0, 0, 0])]
        #expect(message(b.bytes) == nil)  // option data is only looked into by CertificateRestrictions
        b.critical = [("force-command\0x", [])]
        #expect(message(b.bytes) == "test: critical options are malformed")
        #expect(message([]) == "test: does not start with a key type")
        #expect(message(Array(repeating: 0, count: OpenSSHCertificate.maximumLength + 1)) == "test: certificate longer than 65536 bytes")
    }

    @Test func everyTruncationAndMutationIsRefusedWithoutTrapping() throws {
        let k = try Keygen()
        try k.key("ca", type: "rsa", bits: 2048)
        try k.key("user", type: "ecdsa")
        let raw = try k.certify("user", ca: "ca", options: ["force-command=x"], algorithm: "rsa-sha2-256")
        let cert = try OpenSSHCertificate(bytes: raw)
        #expect(cert.verifySignature() == .success("rsa-sha2-256"))
        for length in 0..<raw.count {
            #expect(throws: FivedCoreError.self) { try OpenSSHCertificate(bytes: Array(raw.prefix(length))) }
        }
        var noise = TestKeys.Noise(state: 0x5EED)
        for _ in 0..<2000 {
            var mutated = raw
            for _ in 0...(noise.next() % 4) {
                let at = Int(noise.next() % UInt64(mutated.count))
                mutated[at] = UInt8(truncatingIfNeeded: noise.next())
            }
            if let parsed = try? OpenSSHCertificate(bytes: mutated), parsed.bytes != raw {
                // whatever parses must not verify, unless only the unsigned part changed
                if case .success = parsed.verifySignature() {
                    #expect(Array(parsed.signedBytes) == Array(raw[..<cert.signedLength]))
                }
            }
        }
        for _ in 0..<500 {
            _ = try? OpenSSHCertificate(bytes: noise.bytes(Int(noise.next() % 600)))
        }
    }

    @Test func linesAndBase64() throws {
        let k = try Keygen()
        try k.key("ca")
        try k.key("user")
        _ = try k.certify("user", ca: "ca")
        let line = try k.text("user-cert.pub")
        let fields = line.split(separator: " ")
        let parsed = try OpenSSHCertificate(line: "\(fields[0]) \(fields[1])\r\n", context: "f:1")
        #expect(parsed.keyID == "alice-laptop")
        #expect(throws: FivedCoreError(.certificateMalformed, "f:1: the line says ssh-ed25519 but the certificate is ssh-ed25519-cert-v01@openssh.com")) {
            try OpenSSHCertificate(line: "ssh-ed25519 \(fields[1])", context: "f:1")
        }
        #expect(throws: FivedCoreError(.certificateMalformed, "f:1: expected TYPE BASE64 [COMMENT]")) {
            try OpenSSHCertificate(line: "ssh-ed25519-cert-v01@openssh.com", context: "f:1")
        }
        #expect(throws: FivedCoreError(.certificateMalformed, "f:1: not valid base64")) {
            try OpenSSHCertificate(line: "ssh-ed25519-cert-v01@openssh.com AAAA*", context: "f:1")
        }
    }

    @Test func algorithmNames() {
        #expect(OpenSSHCertificate.blobType(forAlgorithm: "rsa-sha2-512-cert-v01@openssh.com") == "ssh-rsa-cert-v01@openssh.com")
        #expect(OpenSSHCertificate.blobType(forAlgorithm: "rsa-sha2-256-cert-v01@openssh.com") == "ssh-rsa-cert-v01@openssh.com")
        #expect(OpenSSHCertificate.blobType(forAlgorithm: "ssh-ed25519-cert-v01@openssh.com") == "ssh-ed25519-cert-v01@openssh.com")
        #expect(OpenSSHCertificate.blobType(forAlgorithm: "ssh-ed25519") == nil)
        #expect(OpenSSHCertificate.blobType(forAlgorithm: "ssh-dss-cert-v01@openssh.com") == nil)
        #expect(OpenSSHCertificate.isCertificateType("sk-ssh-ed25519-cert-v01@openssh.com"))
        #expect(!OpenSSHCertificate.isCertificateType("sk-ssh-ed25519@openssh.com"))
        #expect(OpenSSHCertificate.isCertificate(blob: TestKeys.bobCertificate.blobBytes))
        #expect(!OpenSSHCertificate.isCertificate(blob: TestKeys.bob.blob.bytes))
        #expect(!OpenSSHCertificate.isCertificate(blob: [0, 0, 0]))
    }

    @Test func securityKeyCertificatesParse() throws {
        // ssh-keygen cannot make an sk key without a token; build the certificate
        // around the test sk keys (the CA signature is then not valid).
        let k = try Keygen()
        try k.key("ca")
        try k.key("user")
        let real = try k.certificate("user", ca: "ca")
        for (type, key) in [("sk-ssh-ed25519-cert-v01@openssh.com", TestKeys.skEd25519), ("sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", TestKeys.skECDSA)] {
            var b = CertificateBuilder(real)
            b.type = type
            var reader = WireReader(key.blob.bytes)
            _ = reader.string()
            b.keyFields = Array(key.blob.bytes[reader.offset...])
            let cert = try OpenSSHCertificate(bytes: b.bytes)
            #expect(cert.key == key.blob)
            #expect(cert.key.fingerprint == key.fingerprint)
            #expect(cert.verifySignature() == .failure(.invalid(algorithm: "ssh-ed25519")))
        }
    }
}

extension TestKeys.Key {
    /// The decoded base64, for keys (certificates) `PublicKeyBlob` does not take.
    var blobBytes: [UInt8] { Base64.decode(base64)! }
}

import Testing
@testable import FivedCore

@Suite struct PublicKeyBlobTests {
    @Test(arguments: TestKeys.all.map { ($0.type, $0.base64, $0.fingerprint) })
    func fingerprintMatchesSSHKeygen(type: String, base64: String, fingerprint: String) throws {
        let blob = try #require(PublicKeyBlob(base64: base64))
        #expect(blob.keyType == type)
        #expect(blob.fingerprint == fingerprint)
        #expect(blob.base64 == base64)
        #expect(PublicKeyBlob(bytes: blob.bytes) == blob)
    }

    @Test func equalityIsByBytes() {
        #expect(TestKeys.alice.blob == PublicKeyBlob(base64: TestKeys.alice.base64))
        #expect(TestKeys.alice.blob != TestKeys.bob.blob)
        #expect(TestKeys.ed25519.blob != TestKeys.skEd25519.blob)  // same point, different type
    }

    @Test func ed25519Structure() {
        let key = [UInt8](repeating: 7, count: 32)
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("ssh-ed25519") + TestKeys.sshString(key))?.keyType == "ssh-ed25519")
        // wrong key length, trailing byte, missing key, truncated length prefix
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("ssh-ed25519") + TestKeys.sshString(Array(key.dropLast()))) == nil)
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("ssh-ed25519") + TestKeys.sshString(key) + [0]) == nil)
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("ssh-ed25519")) == nil)
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("ssh-ed25519") + [0, 0, 0]) == nil)
        // sk-ed25519 needs its application string
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("sk-ssh-ed25519@openssh.com") + TestKeys.sshString(key)) == nil)
    }

    @Test func ecdsaStructure() throws {
        let good = try #require(PublicKeyBlob(base64: TestKeys.ecdsa256.base64)).bytes
        // good = string type(19) | string "nistp256" | string point(65)
        let typeEnd = 4 + 19
        var wrongCurve = good
        wrongCurve.replaceSubrange(typeEnd + 4..<typeEnd + 12, with: Array("nistp384".utf8))
        #expect(PublicKeyBlob(bytes: wrongCurve) == nil)
        var offCurve = good
        offCurve[offCurve.count - 1] ^= 0x01
        #expect(PublicKeyBlob(bytes: offCurve) == nil)
        var compressed = good
        compressed[typeEnd + 12 + 4] = 0x02
        #expect(PublicKeyBlob(bytes: compressed) == nil)
        #expect(PublicKeyBlob(bytes: good + [0]) == nil)
    }

    @Test func rsaStructure() {
        let e: [UInt8] = [0x01, 0x00, 0x01]
        func rsa(e: [UInt8], n: [UInt8]) -> PublicKeyBlob? {
            PublicKeyBlob(bytes: TestKeys.sshString("ssh-rsa") + TestKeys.sshString(e) + TestKeys.sshString(n))
        }
        let n1024 = [0x00, 0xC1] + [UInt8](repeating: 0x5A, count: 127)
        #expect(rsa(e: e, n: n1024) != nil)
        // below sshd's 1024-bit minimum
        #expect(rsa(e: e, n: [0x00, 0xC1] + [UInt8](repeating: 0x5A, count: 63)) == nil)
        // above 16384 bits
        #expect(rsa(e: e, n: [0x00, 0xC1] + [UInt8](repeating: 0x5A, count: 2048)) == nil)
        // negative n, non-minimal encodings, even or empty exponent
        #expect(rsa(e: e, n: Array(n1024.dropFirst())) == nil)
        #expect(rsa(e: e, n: [0x00] + n1024) == nil)
        #expect(rsa(e: [0x00] + e, n: n1024) == nil)
        #expect(rsa(e: [0x01, 0x00, 0x00], n: n1024) == nil)
        #expect(rsa(e: [], n: n1024) == nil)
    }

    @Test func unsupportedAndMalformedTypes() {
        let key = TestKeys.sshString([UInt8](repeating: 7, count: 32))
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("ssh-dss") + key) == nil)
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("ssh-ed25519-cert-v01@openssh.com") + key) == nil)
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("SSH-ED25519") + key) == nil)
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("") + key) == nil)
        #expect(PublicKeyBlob(bytes: TestKeys.sshString("ssh ed25519") + key) == nil)
        #expect(PublicKeyBlob(bytes: []) == nil)
        #expect(PublicKeyBlob(bytes: [0xFF, 0xFF, 0xFF, 0xFF]) == nil)
        #expect(PublicKeyBlob(bytes: [0x00, 0x00, 0x00, 0x0B] + Array("ssh-ed2551".utf8)) == nil)
        #expect(PublicKeyBlob(bytes: [UInt8](repeating: 0, count: PublicKeyBlob.maximumLength + 1)) == nil)
    }

    @Test func strictBase64() {
        let good = TestKeys.alice.base64
        #expect(PublicKeyBlob(base64: good) != nil)
        #expect(PublicKeyBlob(base64: "") == nil)
        #expect(PublicKeyBlob(base64: String(good.dropLast())) == nil)  // length not a multiple of 4
        #expect(PublicKeyBlob(base64: good + "====") == nil)
        #expect(PublicKeyBlob(base64: " " + good.dropFirst()) == nil)
        #expect(PublicKeyBlob(base64: "-" + good.dropFirst()) == nil)
        // ecdsa256 ends in "=": unused low bits must be zero
        let padded = TestKeys.ecdsa256.base64
        #expect(PublicKeyBlob(base64: padded) != nil)
        #expect(PublicKeyBlob(base64: padded.dropLast(2) + "R=") == nil)
        #expect(PublicKeyBlob(base64: padded.dropLast(1)) == nil)  // padding is required
        #expect(Base64.decode("QQ==") == [0x41])
        #expect(Base64.decode("QR==") == nil)
        #expect(Base64.decode("QUI=") == [0x41, 0x42])
        #expect(Base64.decode("QUJ=") == nil)
        #expect(Base64.decode("Q===") == nil)
        #expect(Base64.decode("=QUI") == nil)
        #expect(Base64.decode("QU=I") == nil)
        #expect(Base64.encode([0x41], padded: false) == "QQ")
        #expect(Base64.encode([0x41, 0x42, 0x43], padded: true) == "QUJD")
    }

    @Test func noiseNeverCrashes() {
        var noise = TestKeys.Noise(state: 0x9E37_79B9_7F4A_7C15)
        let good = TestKeys.ecdsa256.blob.bytes
        for round in 0..<2000 {
            let length = Int(noise.next() % 200)
            _ = PublicKeyBlob(bytes: noise.bytes(length))
            // mutate one byte of a real key: must not trap, and must not yield a different valid ecdsa key of another type
            var mutated = good
            mutated[round % mutated.count] ^= UInt8(truncatingIfNeeded: noise.next() | 1)
            if let blob = PublicKeyBlob(bytes: mutated) {
                #expect(blob.keyType == "ecdsa-sha2-nistp256")
            }
            _ = PublicKeyBlob(base64: String(decoding: noise.bytes(length).map { $0 & 0x7F }, as: UTF8.self))
        }
    }
}

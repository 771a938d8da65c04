import Foundation
import Testing
@testable import FivedCore

/// KRLs written by `ssh-keygen -k` at test time, and hand-built ones for every
/// way krl.c refuses a list.
@Suite struct KeyRevocationListTests {
    /// A KRL header (format 1, version 3, generated 1000, comment "c") and `sections`.
    static func krl(_ sections: [(UInt8, [UInt8])], format: UInt32 = 1) -> [UInt8] {
        var w = WireWriter()
        w.uint32(format)
        var out = KeyRevocationList.magic + w.bytes + CertificateBuilder.uint64(3) + CertificateBuilder.uint64(1000) + CertificateBuilder.uint64(0)
        w = WireWriter()
        w.string([UInt8]())
        w.string("c")
        out += w.bytes
        for (type, data) in sections {
            w = WireWriter()
            w.string(data)
            out += [type] + w.bytes
        }
        return out
    }

    /// A certificate section for `ca` (empty: any CA) with `subsections`.
    static func certificates(ca: [UInt8], _ subsections: [(UInt8, [UInt8])]) -> [UInt8] {
        var w = WireWriter()
        w.string(ca)
        w.string([UInt8]())
        var out = w.bytes
        for (type, data) in subsections {
            w = WireWriter()
            w.string(data)
            out += [type] + w.bytes
        }
        return out
    }

    static func message(_ bytes: [UInt8]) -> String? {
        do {
            _ = try KeyRevocationList(bytes: bytes, file: "/k")
            return nil
        } catch {
            return error.message
        }
    }

    @Test func headerAndEmptyList() throws {
        let k = try Keygen()
        try k.key("ca")
        try k.run(["-q", "-k", "-z", "9", "-f", "empty"])
        let krl = try KeyRevocationList(bytes: try k.bytes("empty"), file: "/k")
        #expect(krl.version == 9)
        #expect(krl.generatedDate > 1_700_000_000)
        #expect(krl.revocation(of: try k.publicKey("ca.pub"), file: "/k") == nil)
        let hand = try KeyRevocationList(bytes: Self.krl([]), file: "/k")
        #expect(hand.version == 3 && hand.generatedDate == 1000 && hand.comment == "c")
    }

    @Test func plainKeysByKeyAndHashes() throws {
        let k = try Keygen()
        let a = try k.key("a")
        let b = try k.key("b", type: "ecdsa")
        let c = try k.key("c", type: "rsa", bits: 2048)
        let d = try k.key("d")
        let spec = """
            key: \(try k.text("a.pub"))\
            sha1: \(try k.text("b.pub"))\
            hash: \(c.fingerprint)

            """
        let krl = try KeyRevocationList(bytes: try k.krl("krl", ca: nil, spec: spec), file: "/k")
        #expect(krl.revocation(of: a, file: "/k") == .krlKey(fingerprint: a.fingerprint, match: .key, isCA: false, file: "/k"))
        #expect(krl.revocation(of: b, file: "/k") == .krlKey(fingerprint: b.fingerprint, match: .sha1, isCA: false, file: "/k"))
        #expect(krl.revocation(of: c, file: "/k") == .krlKey(fingerprint: c.fingerprint, match: .sha256, isCA: false, file: "/k"))
        #expect(krl.revocation(of: d, file: "/k") == nil)
        #expect(
            Revocation.krlKey(fingerprint: b.fingerprint, match: .sha1, isCA: false, file: "/k").description
                == "revoked by KRL: key \(b.fingerprint) listed by SHA-1 hash in /k")
        // ssh-keygen -Q agrees on every key
        for (name, revoked) in [("a", true), ("b", true), ("c", true), ("d", false)] {
            #expect((try? k.run(["-Q", "-f", "krl", "\(name).pub"])) == nil ? revoked : !revoked, "\(name)")
        }
    }

    @Test func serialBitmapAndRanges() throws {
        let k = try Keygen()
        let ca = try k.key("ca")
        try k.key("user")
        // odd serials 1..199 come out as a bitmap section; 1000-2000 as a range
        let odd = stride(from: 1, through: 199, by: 2).map { "serial: \($0)" }.joined(separator: "\n")
        let bytes = try k.krl("krl", ca: "ca.pub", spec: odd + "\nserial: 1000-2000\nserial: 5000\n")
        let krl = try KeyRevocationList(bytes: bytes, file: "/k")
        let section = try #require(krl.certificates[ca.bytes])
        #expect(!section.bitmaps.isEmpty)
        for serial: UInt64 in [0, 1, 2, 3, 198, 199, 200, 999, 1000, 1500, 2000, 2001, 4999, 5000, 5001] {
            let expected = serial != 0 && ((serial <= 199 && serial % 2 == 1) || (1000...2000).contains(serial) || serial == 5000)
            #expect(section.revokes(serial: serial) == expected, "serial \(serial)")
        }
        // the queries go through a real certificate
        let revoked = try k.certificate("user", ca: "ca", serial: 1501)
        #expect(krl.revocation(of: revoked, file: "/k") == .krlSerial(1501, file: "/k"))
        let kept = try k.certificate("user", ca: "ca", serial: 1998 + 5)
        #expect(krl.revocation(of: kept, file: "/k") == nil)
    }

    @Test func certificateChecksComeInSshdsOrder() throws {
        let k = try Keygen()
        let ca = try k.key("ca")
        let user = try k.key("user")
        let cert = try k.certificate("user", ca: "ca", id: "alice", serial: 5)
        // certified key first, then key ID, then serial, then the CA key
        let all = try KeyRevocationList(
            bytes: try k.krl("all", ca: "ca.pub", spec: "key: \(try k.text("user.pub"))id: alice\nserial: 5\nkey: \(try k.text("ca.pub"))"), file: "/k")
        #expect(all.revocation(of: cert, file: "/k") == .krlKey(fingerprint: user.fingerprint, match: .key, isCA: false, file: "/k"))
        let idAndSerial = try KeyRevocationList(bytes: try k.krl("is", ca: "ca.pub", spec: "id: alice\nserial: 5\n"), file: "/k")
        #expect(idAndSerial.revocation(of: cert, file: "/k") == .krlKeyID("alice", file: "/k"))
        let caOnly = try KeyRevocationList(bytes: try k.krl("caonly", ca: nil, spec: "hash: \(ca.fingerprint)\n"), file: "/k")
        #expect(caOnly.revocation(of: cert, file: "/k") == .krlKey(fingerprint: ca.fingerprint, match: .sha256, isCA: true, file: "/k"))
        // serial 0 is never revoked by serial
        let zero = try k.certificate("user", ca: "ca", id: "zero")
        let wide = try KeyRevocationList(
            bytes: Self.krl([(1, Self.certificates(ca: ca.bytes, [(0x21, CertificateBuilder.uint64(1) + CertificateBuilder.uint64(.max))]))]), file: "/k")
        #expect(wide.revocation(of: zero, file: "/k") == nil)
        #expect(wide.revocation(of: cert, file: "/k") == .krlSerial(5, file: "/k"))
    }

    @Test func handBuiltSectionsParse() throws {
        // the signature section is skipped, a non-critical extension ignored, an
        // unknown CA type kept (it can never match)
        let dsa = TestKeys.sshString("ssh-dss") + TestKeys.sshString([1])
        let bitmap = CertificateBuilder.uint64(64) + TestKeys.sshString([0x00, 0x81])  // serials 64 and 71
        let list =
            Self.krl([
                (
                    1,
                    Self.certificates(
                        ca: TestKeys.ca.blob.bytes,
                        [(0x22, bitmap), (0x20, CertificateBuilder.uint64(9)), (0x39, TestKeys.sshString("x") + [0] + TestKeys.sshString([1]))])
                ),
                (1, Self.certificates(ca: dsa, [(0x23, TestKeys.sshString("id"))])),
                (255, TestKeys.sshString("ext@example.com") + [0] + TestKeys.sshString([])),
                (4, TestKeys.ca.blob.bytes),
            ]) + TestKeys.sshString([9, 9, 9])
        let krl = try KeyRevocationList(bytes: list, file: "/k")
        let section = try #require(krl.certificates[TestKeys.ca.blob.bytes])
        #expect(section.revokes(serial: 64) && section.revokes(serial: 71) && section.revokes(serial: 9))
        #expect(!section.revokes(serial: 65) && !section.revokes(serial: 72) && !section.revokes(serial: 63))
        #expect(krl.certificates[dsa]?.keyIDs == [Array("id".utf8)])
    }

    @Test func malformedListsAreRefusedWholeNamingTheSection() {
        let ca = TestKeys.ca.blob.bytes
        func certs(_ subsections: [(UInt8, [UInt8])]) -> [UInt8] { Self.krl([(1, Self.certificates(ca: ca, subsections))]) }
        let u = CertificateBuilder.uint64
        #expect(Self.message(Array("SSHKRL\n".utf8)) == "/k: KRL does not start with SSHKRL")
        #expect(Self.message(KeyRevocationList.magic) == "/k: KRL header is truncated")
        #expect(Self.message(Self.krl([], format: 2)) == "/k: KRL format version 2 is not supported (only 1)")
        #expect(Self.message(Self.krl([(6, [])])) == "/k: KRL section 1 has unknown type 6")
        #expect(Self.message(Self.krl([(2, [0, 0, 0])])) == "/k: KRL section 1 (keys): truncated entry")
        #expect(Self.message(Self.krl([(5, TestKeys.sshString([1, 2]))])) == "/k: KRL section 1 (SHA-256 hashes): an entry of 2 bytes, not 32")
        #expect(
            Self.message(Self.krl([(3, TestKeys.sshString([UInt8](repeating: 0, count: 32)))]))
                == "/k: KRL section 1 (SHA-1 hashes): an entry of 32 bytes, not 20")
        #expect(
            Self.message(Self.krl([(255, TestKeys.sshString("x") + [1] + TestKeys.sshString([]))]))
                == "/k: KRL section 1 (extension): unsupported critical extension x")
        #expect(Self.message(Self.krl([(4, [])])) == "/k: KRL section 1 (signature) is truncated")
        #expect(Self.message(Self.krl([]) + [1]) == "/k: KRL section 1 is truncated")
        #expect(Self.message(certs([(0x20, u(0))])) == "/k: KRL section 1 (certificates): revokes serial 0")
        #expect(Self.message(certs([(0x20, [1, 2, 3])])) == "/k: KRL section 1 (certificates): serial list is not a list of uint64")
        #expect(Self.message(certs([(0x21, u(5) + u(4))])) == "/k: KRL section 1 (certificates): serial range 5-4 is invalid")
        #expect(Self.message(certs([(0x21, u(0) + u(4))])) == "/k: KRL section 1 (certificates): serial range 0-4 is invalid")
        #expect(Self.message(certs([(0x21, u(1) + u(4) + [0])])) == "/k: KRL section 1 (certificates): unparsed bytes in subsection type 33")
        #expect(Self.message(certs([(0x22, u(0) + TestKeys.sshString([1]))])) == "/k: KRL section 1 (certificates): revokes serial 0")
        #expect(Self.message(certs([(0x22, u(.max) + TestKeys.sshString([2]))])) == "/k: KRL section 1 (certificates): serial bitmap wraps past 2^64")
        #expect(Self.message(certs([(0x22, u(.max) + TestKeys.sshString([1]))])) == nil)  // exactly serial 2^64-1
        #expect(Self.message(certs([(0x22, u(1) + TestKeys.sshString([0x80]))])) == "/k: KRL section 1 (certificates): serial bitmap is negative")
        #expect(
            Self.message(certs([(0x22, u(1) + TestKeys.sshString([UInt8](repeating: 1, count: 2049)))]))
                == "/k: KRL section 1 (certificates): serial bitmap is wider than OpenSSH reads")
        #expect(Self.message(certs([(0x22, u(1) + TestKeys.sshString([0] + [UInt8](repeating: 1, count: 2048)))])) == nil)
        #expect(Self.message(certs([(0x23, TestKeys.sshString("a\0b"))])) == "/k: KRL section 1 (certificates): key ID list is malformed")
        #expect(
            Self.message(certs([(0x39, TestKeys.sshString("x") + [1] + TestKeys.sshString([]))]))
                == "/k: KRL section 1 (certificates): unsupported critical extension x")
        #expect(Self.message(certs([(0x40, [])])) == "/k: KRL section 1 (certificates): unknown subsection type 64")
        #expect(
            Self.message(Self.krl([(1, TestKeys.sshString(TestKeys.sshString("ssh-ed25519") + TestKeys.sshString([1])) + TestKeys.sshString([]))]))
                == "/k: KRL section 1 (certificates): CA key: ssh-ed25519 key blob is malformed")
    }

    @Test func everyTruncationAndNoiseIsHandled() throws {
        let k = try Keygen()
        try k.key("ca")
        try k.key("a")
        let odd = stride(from: 1, through: 99, by: 2).map { "serial: \($0)" }.joined(separator: "\n")
        let bytes = try k.krl("krl", ca: "ca.pub", spec: odd + "\nserial: 500-600\nid: x\nkey: \(try k.text("a.pub"))")
        #expect(Self.message(bytes) == nil)
        for length in 0..<bytes.count {
            // a truncated list either fails or is a shorter valid list; it never traps
            _ = Self.message(Array(bytes.prefix(length)))
        }
        var noise = TestKeys.Noise(state: 0xC0FFEE)
        for _ in 0..<3000 {
            var mutated = bytes
            let at = KeyRevocationList.magic.count + Int(noise.next() % UInt64(mutated.count - KeyRevocationList.magic.count))
            mutated[at] = UInt8(truncatingIfNeeded: noise.next())
            _ = Self.message(mutated)
        }
    }
}

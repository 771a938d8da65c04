import Testing
@testable import FivedCore

@Suite struct ProxyV2HeaderTests {
    static let sig: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    @Test func ipv4WithoutTLVs() throws {
        let h = ProxyV2Header(
            sourceAddress: IPAddress("192.0.2.10")!, sourcePort: 51234,
            destinationAddress: IPAddress("198.51.100.1")!, destinationPort: 1)
        let expected: [UInt8] =
            Self.sig + [0x21, 0x11, 0x00, 0x0C] + [192, 0, 2, 10] + [198, 51, 100, 1] + [0xC8, 0x22] + [0x00, 0x01]
        #expect(try h.encoded() == expected)
        #expect(ProxyV2Header.decode(expected) == .header(h, length: 28))
    }

    @Test func ipv6WithFivedTLVs() throws {
        let h = ProxyV2Header(
            sourceAddress: IPAddress("2001:db8::5")!, sourcePort: 0x1234,
            destinationAddress: IPAddress("::1")!, destinationPort: 2222,
            uniqueID: [0xAA, 0xBB], service: ServiceName("Web")!, user: "alice",
            keyFingerprint: "SHA256:x", keyComment: "é")
        var expected = Self.sig + [0x21, 0x21]
        let src: [UInt8] = [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [5]
        let dst: [UInt8] = [UInt8](repeating: 0, count: 15) + [1]
        let tlvs: [UInt8] =
            [0x05, 0x00, 0x02, 0xAA, 0xBB]
            + [0xE0, 0x00, 0x03] + Array("web".utf8)
            + [0xE1, 0x00, 0x05] + Array("alice".utf8)
            + [0xE2, 0x00, 0x08] + Array("SHA256:x".utf8)
            + [0xE3, 0x00, 0x02, 0xC3, 0xA9]
        let body = src + dst + [0x12, 0x34, 0x08, 0xAE] + tlvs
        expected += [UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        let encoded = try h.encoded()
        #expect(encoded == expected)
        #expect(body.count == 36 + 5 + 6 + 8 + 11 + 5)
        guard case .header(let decoded, let length) = ProxyV2Header.decode(encoded + [0x47, 0x45, 0x54]) else {
            Issue.record("did not decode")
            return
        }
        #expect(length == encoded.count)
        #expect(decoded == h)
        #expect(decoded.value(of: ProxyV2Header.serviceType) == Array("web".utf8))
        #expect(decoded.value(of: ProxyV2Header.commentType) == [0xC3, 0xA9])
        #expect(decoded.value(of: 0x99) == nil)
    }

    @Test func mappedAddressesAreIPv4() throws {
        let h = ProxyV2Header(
            sourceAddress: IPAddress("::ffff:10.1.2.3")!, sourcePort: 1,
            destinationAddress: IPAddress("::ffff:127.0.0.1")!, destinationPort: 2)
        let encoded = try h.encoded()
        #expect(encoded[13] == 0x11)
        #expect(Array(encoded[16..<24]) == [10, 1, 2, 3, 127, 0, 0, 1])
    }

    @Test func mixedFamiliesMapIPv4IntoIPv6() throws {
        let h = ProxyV2Header(
            sourceAddress: IPAddress("10.1.2.3")!, sourcePort: 1, destinationAddress: IPAddress("::1")!, destinationPort: 2)
        let encoded = try h.encoded()
        #expect(encoded[13] == 0x21)
        #expect(Array(encoded[16..<32]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 1, 2, 3])
        #expect(Array(encoded[32..<48]) == [UInt8](repeating: 0, count: 15) + [1])
        // decoding gives the normalised (IPv4) source back
        guard case .header(let decoded, _) = ProxyV2Header.decode(encoded) else {
            Issue.record("did not decode")
            return
        }
        #expect(decoded.sourceAddress == .v4([10, 1, 2, 3]))
        #expect(decoded.destinationAddress == IPAddress("::1"))
    }

    @Test func limits() throws {
        func header(uniqueID: Int, comment: Int) -> ProxyV2Header {
            ProxyV2Header(
                sourceAddress: .v4([1, 2, 3, 4]), sourcePort: 1, destinationAddress: .v4([5, 6, 7, 8]), destinationPort: 2,
                uniqueID: [UInt8](repeating: 1, count: uniqueID), service: ServiceName("s")!, user: "u",
                keyFingerprint: "f", keyComment: String(repeating: "c", count: comment))
        }
        #expect(try header(uniqueID: 128, comment: 0).encoded().count == 16 + 12 + 131 + 4 + 4 + 4 + 3)
        #expect(throws: FivedCoreError.self) { try header(uniqueID: 129, comment: 0).encoded() }
        #expect(throws: FivedCoreError.self) { try header(uniqueID: 1, comment: 65535).encoded() }
        #expect(throws: FivedCoreError.self) { try header(uniqueID: 1, comment: 70000).encoded() }
        let big = try header(uniqueID: 1, comment: 65_000).encoded()
        #expect(big.count == 16 + 12 + 4 + 4 + 4 + 4 + 65_003)
    }

    @Test func decoderRejectsWhatFivedNeverSends() throws {
        let good = try ProxyV2Header(
            sourceAddress: .v4([1, 2, 3, 4]), sourcePort: 1, destinationAddress: .v4([5, 6, 7, 8]), destinationPort: 2,
            tlvs: [.init(type: 0xE0, value: [1, 2, 3])]
        ).encoded()
        for n in 0..<good.count {
            #expect(ProxyV2Header.decode(good.prefix(n)) == .needMore, "prefix \(n)")
        }
        func isInvalid(_ bytes: [UInt8]) -> Bool {
            if case .invalid = ProxyV2Header.decode(bytes) { return true }
            return false
        }
        #expect(isInvalid(Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8)))
        var local = good
        local[12] = 0x20
        #expect(isInvalid(local))
        var udp = good
        udp[13] = 0x12
        #expect(isInvalid(udp))
        var shortBlock = Array(good.prefix(16))
        shortBlock[15] = 4
        #expect(isInvalid(shortBlock + [1, 2, 3, 4]))
        var truncatedTLV = good
        truncatedTLV[15] -= 1
        #expect(isInvalid(Array(truncatedTLV.dropLast())))
        var longTLV = good
        longTLV[30] = 9
        #expect(isInvalid(longTLV))
        var noise = TestKeys.Noise(state: 42)
        for _ in 0..<2000 {
            var bytes = good
            bytes[Int(noise.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: noise.next())
            _ = ProxyV2Header.decode(bytes)
            _ = ProxyV2Header.decode(Self.sig + noise.bytes(Int(noise.next() % 64)))
        }
    }
}

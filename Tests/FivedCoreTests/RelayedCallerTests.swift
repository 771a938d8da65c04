import Testing
@testable import FivedCore

/// The relayed-caller text a node puts in a relayed open's originator field:
/// round trips, and one refusal per broken field or bound.
@Suite struct RelayedCallerTests {
    static let plain = RelayedCaller(
        entryNode: NodeName("b")!, user: "alice", key: TestKeys.alice.blob, keyComment: "alice@laptop",
        clientAddress: "192.0.2.7", clientPort: 51234, localAddress: "10.0.0.2", localPort: 1, channelID: 42)

    static var certified: RelayedCaller {
        var c = plain
        c.certificate = .init(keyID: "alice-laptop", serial: 9, principal: "alice", caFingerprint: TestKeys.bob.fingerprint)
        return c
    }

    /// Builds the wire fields by hand, so a test can break exactly one.
    static func wire(
        node: String = "b", user: [UInt8] = Array("alice".utf8), key: [UInt8] = TestKeys.alice.blob.bytes,
        comment: [UInt8] = Array("c".utf8), client: String = "192.0.2.7", clientPort: UInt32 = 1, local: String = "::1",
        localPort: UInt32 = 1, certificate: [UInt8] = [0], trailing: [UInt8] = []
    ) -> String {
        var w = WireWriter()
        w.string(node)
        w.string(user)
        w.string(key)
        w.string(comment)
        w.string(client)
        w.uint32(clientPort)
        w.string(local)
        w.uint32(localPort)
        w.uint64(7)
        return RelayedCaller.tag + Base64.encode(w.bytes + certificate + trailing, padded: true)
    }

    static func certificateFields(keyID: String = "id", principal: String = "alice", ca: String = TestKeys.bob.fingerprint) -> [UInt8] {
        var w = WireWriter()
        w.byte(1)
        w.string(keyID)
        w.uint64(3)
        w.string(principal)
        w.string(ca)
        return w.bytes
    }

    @Test func roundTripWithoutCertificate() throws {
        let text = Self.plain.encoded
        #expect(text.hasPrefix("fived-caller-1:"))
        #expect(RelayedCaller.isRelayed(text))
        #expect(try RelayedCaller(decoding: text) == Self.plain)
    }

    @Test func roundTripWithCertificate() throws {
        #expect(try RelayedCaller(decoding: Self.certified.encoded) == Self.certified)
    }

    @Test func theCallerOnTheOwnerNode() {
        let caller = Self.certified.caller
        #expect(caller.user == "alice" && caller.key.blob == TestKeys.alice.blob && caller.key.comment == "alice@laptop")
        #expect(caller.address == "192.0.2.7" && caller.port == 51234)
        #expect(caller.certificate?.keyID == "alice-laptop" && caller.certificate?.principal == "alice")
        // The entry node applied the key's options; only the allow list decides here.
        #expect(caller.key.options.portForwarding && caller.certificate?.restrictions.permitPortForwarding == true)
        #expect(AccessPolicy.allowListAdmits([.principal("alice")], caller: caller))
        #expect(!AccessPolicy.allowListAdmits([.user("bob")], caller: caller))
    }

    @Test func anIPv6CallerKeepsItsAddress() throws {
        var c = Self.plain
        c.clientAddress = "2001:db8::5"
        #expect(try RelayedCaller(decoding: c.encoded).clientAddress == "2001:db8::5")
    }

    @Test func theHandBuiltWireDecodes() throws {
        let decoded = try RelayedCaller(decoding: Self.wire())
        #expect(decoded.user == "alice" && decoded.localAddress == "::1" && decoded.channelID == 7 && decoded.certificate == nil)
        #expect(try RelayedCaller(decoding: Self.wire(certificate: Self.certificateFields())).certificate?.serial == 3)
    }

    static let broken: [(String, String)] = [
        ("no tag", "AAAA"),
        ("another version", "fived-caller-2:" + Base64.encode([0], padded: true)),
        ("not base64", RelayedCaller.tag + "!!!!"),
        ("empty", RelayedCaller.tag),
        ("node with a dot", wire(node: "b.c")),
        ("node upper case (not canonical)", wire(node: "B")),
        ("empty node", wire(node: "")),
        ("empty user", wire(user: [])),
        ("user too long", wire(user: Array(repeating: 0x61, count: 257))),
        ("user with a NUL", wire(user: [0x61, 0, 0x62])),
        ("user not UTF-8", wire(user: [0xFF, 0xFE])),
        ("key not a key", wire(key: Array("ssh-ed25519".utf8))),
        ("comment too long", wire(comment: Array(repeating: 0x61, count: 1025))),
        ("client not an address", wire(client: "example.org")),
        ("client port above 65535", wire(clientPort: 70000)),
        ("local not an address", wire(local: "")),
        ("local port above 65535", wire(localPort: 65536)),
        ("certificate flag 2", wire(certificate: [2])),
        ("certificate flag missing", wire(certificate: [])),
        ("certificate with a bad CA", wire(certificate: certificateFields(ca: "SHA256:short"))),
        ("certificate without principal", wire(certificate: certificateFields(principal: ""))),
        ("certificate cut short", wire(certificate: Array(certificateFields().dropLast(3)))),
        ("bytes after the last field", wire(trailing: [0])),
        ("longer than the bound", RelayedCaller.tag + String(repeating: "A", count: RelayedCaller.maximumEncodedLength)),
    ]

    @Test(arguments: broken)
    func refused(_ entry: (String, String)) {
        #expect(throws: FivedCoreError.self, "\(entry.0)") { try RelayedCaller(decoding: entry.1) }
        do {
            _ = try RelayedCaller(decoding: entry.1)
        } catch {
            #expect(error.code == .relayedCallerMalformed && error.message.hasPrefix("relayed caller: "), "\(entry.0): \(error)")
        }
    }

    /// What fuzz/relayed_caller.swift checks, on a fixed budget in every test
    /// run: 5,000 mutations of valid encodings (bytes flipped, cut, grown) never
    /// trap, and whatever decodes encodes back to itself.
    @Test func mutationsNeverTrapAndRoundTrip() {
        var generator = SplitMix(seed: 0x5EED)
        let seeds = [Array(Self.plain.encoded.utf8), Array(Self.certified.encoded.utf8)]
        var decoded = 0
        for i in 0..<5_000 {
            var bytes = seeds[i % 2]
            // Mutate the wire bytes behind the tag half the time, the text itself otherwise.
            let wire = i % 4 < 2
            if wire, var raw = Base64.decode(String(decoding: bytes.dropFirst(RelayedCaller.tag.utf8.count), as: UTF8.self)) {
                for _ in 0...(generator.next() % 4) {
                    switch generator.next() % 3 {
                    case 0 where !raw.isEmpty: raw[Int(generator.next() % UInt64(raw.count))] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
                    case 1 where !raw.isEmpty: raw.removeLast(Int(generator.next() % UInt64(min(raw.count, 8))) + 1)
                    default: raw.append(UInt8(truncatingIfNeeded: generator.next()))
                    }
                }
                bytes = Array((RelayedCaller.tag + Base64.encode(raw, padded: true)).utf8)
            } else if !bytes.isEmpty {
                bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
            }
            guard let caller = try? RelayedCaller(decoding: String(decoding: bytes, as: UTF8.self)) else { continue }
            decoded += 1
            #expect((try? RelayedCaller(decoding: caller.encoded)) == caller)
        }
        #expect(decoded > 0, "no mutation decoded: the checks may be too strict to be exercised")
    }
}

/// A small deterministic generator (SplitMix64), so a failure repeats.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

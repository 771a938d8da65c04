import Testing
@testable import FivedCore

@Suite("What a service learns")
struct CallerHandOffTests {
    let caller = Caller(
        user: "alice", key: AuthorizedKey(blob: TestKeys.alice.blob, comment: "alice@laptop", options: KeyOptions(), file: "f", line: 1),
        address: "192.0.2.7", port: 50000)

    func handOff(caller: Caller?) -> CallerHandOff {
        CallerHandOff(
            service: ServiceName("web")!, caller: caller, clientAddress: "192.0.2.7", clientPort: 50000,
            localAddress: "198.51.100.1", localPort: 1, channelID: 42)
    }

    @Test func theExecEnvironmentIsExactlySPECs() {
        #expect(
            handOff(caller: caller).environment == [
                "PATH=/usr/local/bin:/usr/bin:/bin", "FIVED_SERVICE=web", "FIVED_USER=alice",
                "FIVED_KEY_FINGERPRINT=\(TestKeys.alice.fingerprint)", "FIVED_KEY_COMMENT=alice@laptop",
                "FIVED_CLIENT_ADDR=192.0.2.7", "FIVED_CLIENT_PORT=50000", "PROTO=TCP", "TCPREMOTEIP=192.0.2.7",
                "TCPREMOTEPORT=50000", "TCPLOCALIP=198.51.100.1", "TCPLOCALPORT=1",
            ])
    }

    @Test func aTCPMUXClientHasNoUserOrKey() {
        let names = handOff(caller: nil).environment.map { $0.split(separator: "=")[0] }
        #expect(!names.contains("FIVED_USER") && !names.contains("FIVED_KEY_FINGERPRINT") && names.contains("FIVED_CLIENT_ADDR"))
    }

    @Test func aNULInAValueCannotCutTheEnvironment() {
        var evil = caller
        evil.user = "a\u{0}b"
        #expect(handOff(caller: evil).environment.contains("FIVED_USER=a?b"))
    }

    @Test func theProxyHeaderCarriesTheCallersTLVs() throws {
        let header = try #require(handOff(caller: caller).proxyHeader)
        #expect(header.tlvs.map(\.type) == [0x05, 0xE0, 0xE1, 0xE2, 0xE3])
        #expect(header.tlvs[0].value == Array("42".utf8))
        #expect(header.tlvs[2].value == Array("alice".utf8))
        #expect(header.sourcePort == 50000 && header.destinationPort == 1)
    }

    @Test func aCertificateAddsItsIdentity() throws {
        var certified = caller
        certified.certificate = CertificateIdentity(
            keyID: "alice-laptop", serial: 42, principal: "ops", caFingerprint: TestKeys.ca.blob.fingerprint,
            restrictions: CertificateRestrictions())
        let environment = handOff(caller: certified).environment
        #expect(
            Array(environment[5...8]) == [
                "FIVED_CERT_KEY_ID=alice-laptop", "FIVED_CERT_SERIAL=42", "FIVED_CERT_PRINCIPAL=ops",
                "FIVED_CERT_CA_FINGERPRINT=\(TestKeys.ca.blob.fingerprint)",
            ])
        #expect(!handOff(caller: caller).environment.contains { $0.hasPrefix("FIVED_CERT_") })
        let header = try #require(handOff(caller: certified).proxyHeader)
        #expect(header.tlvs.map(\.type) == [0x05, 0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7])
        #expect(header.value(of: 0xE5) == Array("42".utf8))
        #expect(header.value(of: 0xE7) == Array(TestKeys.ca.blob.fingerprint.utf8))
        // and it survives the wire
        guard case .header(let decoded, _) = ProxyV2Header.decode(try header.encoded()) else {
            Issue.record("does not decode")
            return
        }
        #expect(decoded.value(of: 0xE4) == Array("alice-laptop".utf8) && decoded.value(of: 0xE6) == Array("ops".utf8))
    }

    @Test func theTCPMUXProxyHeaderNamesOnlyTheService() throws {
        let header = try #require(handOff(caller: nil).proxyHeader)
        #expect(header.tlvs == [.init(type: 0xE0, value: Array("web".utf8))])
    }
}

import Foundation
import Testing

/// `proxy_protocol = true`: a PROXY v2 header before any data, carrying the caller.
@Suite("PROXY protocol", .timeLimit(.minutes(2)))
struct ProxyProtocolTests {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    @Test("the header carries addresses, ports, unique id, service, user, fingerprint and comment")
    func header() async throws {
        let environment = try await TestEnvironment.make()
        let backend = try RecordingServer()
        defer { backend.stop() }
        var service = TestService.connect("proxied", "127.0.0.1:\(backend.port)")
        service.extra = ["proxy_protocol = true"]
        try await environment.withFived(FivedOptions(services: [service])) { fived in
            let result = try await fived.stdio("proxied", Array("hello".utf8))
            #expect(result.exitStatus == 0, "\(result)")
            #expect(result.stdoutText == "ok\n", "\(result)")
            _ = await eventually { !backend.recordings.isEmpty }
            let bytes = try #require(backend.recordings.first, "the backend got no connection")
            try #require(bytes.count >= 16, "got \(bytes.count) bytes")
            #expect(Array(bytes[0..<12]) == Self.signature, "no PROXY v2 signature")
            #expect(bytes[12] == 0x21, "version 2, command PROXY")
            #expect(bytes[13] == 0x11, "TCP over IPv4")
            let length = Int(bytes[14]) << 8 | Int(bytes[15])
            try #require(bytes.count >= 16 + length)
            let body = Array(bytes[16..<(16 + length)])
            try #require(body.count >= 12)
            #expect(Array(body[0..<4]) == [127, 0, 0, 1] && Array(body[4..<8]) == [127, 0, 0, 1])
            let sourcePort = UInt16(body[8]) << 8 | UInt16(body[9])
            let destinationPort = UInt16(body[10]) << 8 | UInt16(body[11])
            #expect(destinationPort == fived.port, "destination = fived's port")
            var tlvs: [UInt8: [UInt8]] = [:]
            var offset = 12
            while offset + 3 <= body.count {
                let type = body[offset]
                let size = Int(body[offset + 1]) << 8 | Int(body[offset + 2])
                guard offset + 3 + size <= body.count else { break }
                tlvs[type] = Array(body[(offset + 3)..<(offset + 3 + size)])
                offset += 3 + size
            }
            #expect(tlvs[0x05]?.isEmpty == false, "UNIQUE_ID")
            #expect(tlvs[0xE0].map { String(decoding: $0, as: UTF8.self) } == "proxied")
            #expect(tlvs[0xE1].map { String(decoding: $0, as: UTF8.self) } == environment.user)
            #expect(tlvs[0xE2].map { String(decoding: $0, as: UTF8.self) } == environment.key.fingerprint)
            #expect(tlvs[0xE3].map { String(decoding: $0, as: UTF8.self) } == environment.key.comment)
            #expect(String(decoding: bytes[(16 + length)...], as: UTF8.self) == "hello", "the data after the header")
            let logged = await fived.waitForLog { $0.message == "channel closed" && $0["service"] == "proxied" }
            #expect(logged?["client"] == "127.0.0.1:\(sourcePort)", "source port = the SSH client's: \(String(describing: logged))")
        }
    }
}

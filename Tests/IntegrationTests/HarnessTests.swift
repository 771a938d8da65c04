import Foundation
import Testing

/// The harness's own parts that need no daemon: keys, agent, log parsing, echo servers,
/// finding the binary. When these fail, the daemon tests cannot be trusted.
@Suite("Harness")
struct HarnessTests {
    @Test("ssh-keygen makes Ed25519, RSA and ECDSA keys with SHA256 fingerprints", .timeLimit(.minutes(1)))
    func keys() async throws {
        let directory = try TestDirectory()
        for type in [ClientKey.KeyType.ed25519, .rsa, .ecdsa] {
            let key = try await ClientKey.generate(type, name: "k-\(type.rawValue)", in: directory)
            #expect(key.fingerprint.hasPrefix("SHA256:"))
            #expect(key.fingerprint.count > 40)
            #expect(key.publicLine.hasSuffix(key.comment))
        }
    }

    @Test("ssh-agent holds an added key", .timeLimit(.minutes(1)))
    func agent() async throws {
        let directory = try TestDirectory()
        let key = try await ClientKey.generate(.ed25519, name: "agent-key", in: directory)
        let agent = try await SSHAgent.start(in: directory)
        try await agent.add(key)
        let listed = try await agent.fingerprints()
        await agent.stop()
        #expect(listed == [key.fingerprint])
    }

    @Test("log lines parse into message and fields, quoted values included")
    func logLines() throws {
        let line = try #require(
            LogLine(
                #"2026-11-26T16:40:00.123Z info channel closed user=alice fingerprint=SHA256:abc client=127.0.0.1:5555 service=echo form=direct-tcpip bytes_in=10 bytes_out=12 duration_ms=3 reason="client closed \"x\"""#
            ))
        #expect(line.level == "info")
        #expect(line.message == "channel closed")
        #expect(line["user"] == "alice")
        #expect(line["client"] == "127.0.0.1:5555")
        #expect(line["bytes_out"] == "12")
        #expect(line["reason"] == #"client closed "x""#)
        let listening = try #require(LogLine("2026-11-26T16:40:00.123Z info listening address=127.0.0.1:43210"))
        #expect(listening.message == "listening")
        #expect(listening["address"] == "127.0.0.1:43210")
    }

    @Test("the echo servers echo and half-close", .timeLimit(.minutes(1)))
    func echoServers() async throws {
        let directory = try TestDirectory()
        let tcp = try EchoServer.tcp()
        let unix = try EchoServer.unix(path: directory.file("echo.sock"))
        defer { tcp.stop(); unix.stop() }
        let data = randomBytes(300_000)
        let viaTCP = try await onThread {
            let fd = try Sockets.connectTCP(port: tcp.port)
            defer { close(fd) }
            return try Sockets.exchange(fd, data)
        }
        expectBytes(viaTCP, data)
        let socketPath = directory.file("echo.sock")
        let viaUnix = try await onThread {
            let fd = try Sockets.connectUnix(path: socketPath)
            defer { close(fd) }
            return try Sockets.exchange(fd, data)
        }
        expectBytes(viaUnix, data)
        #expect(unix.connections == 1)
    }

    @Test("the built fived binary is found")
    func binary() throws {
        let path = try Binaries.fived()
        #expect(path.hasSuffix("/fived"))
        print("runner: \(CommandLine.arguments.first ?? "?") fived: \(path)")
    }
}

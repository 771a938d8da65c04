#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `ssh -R NAME:1:HOST:PORT`: a key with permitlisten publishes NAME for as long as
/// its connection lives.
@Suite("Publishing", .timeLimit(.minutes(2)))
struct PublishingTests {
    @Test("a published name is reachable by -W while the publisher is connected, and gone after")
    func publish() async throws {
        let environment = try await TestEnvironment.make()
        let publisherKey = try await environment.newKey(.ed25519, name: "publisher")
        try environment.setAuthorizedKeys([
            environment.key.publicLine,
            publisherKey.authorizedLine(options: #"permitlisten="pub:*""#),
        ])
        let local = try EchoServer.tcp()
        defer { local.stop() }
        try await environment.withFived(FivedOptions()) { fived in
            let publisher = try fived.spawnSSH(
                ["-N", "-o", "ExitOnForwardFailure=yes", "-R", "pub:1:127.0.0.1:\(local.port)"],
                identity: .key(publisherKey), name: "ssh-R")
            defer { publisher.signal(SIGKILL) }
            let data = randomBytes(100_000)
            var last: ProcessResult?
            let reached = try await eventually(timeout: .seconds(10)) {
                guard publisher.isRunning else { return true }
                last = try await fived.stdio("pub", data)
                return last?.exitStatus == 0
            }
            #expect(reached && publisher.isRunning, "publisher: \(publisher.stderr)\nclient: \(last.map { "\($0)" } ?? "-")")
            if let last { expectBytes(last.stdout, data, "through the published name") }
            #expect(local.connections >= 1)

            publisher.signal(SIGKILL)
            _ = await publisher.wait(timeout: .seconds(5))
            var after: ProcessResult?
            let removed = try await eventually(timeout: .seconds(10)) {
                after = try await fived.stdio("pub", data)
                return after?.exitStatus == 255
            }
            #expect(removed, "the name outlived its publisher: \(after.map { "\($0)" } ?? "-")")
        }
    }

    @Test("publishing without permitlisten, or a configured name, is refused")
    func refused() async throws {
        let environment = try await TestEnvironment.make()
        let publisherKey = try await environment.newKey(.ed25519, name: "publisher")
        try environment.setAuthorizedKeys([
            environment.key.publicLine,
            publisherKey.authorizedLine(options: #"permitlisten="*:*""#),
        ])
        try await environment.withFived(FivedOptions()) { fived in
            let plain = try await fived.ssh(
                ["-N", "-o", "ExitOnForwardFailure=yes", "-R", "mine:1:127.0.0.1:9"], timeout: .seconds(15))
            #expect(plain.exitStatus == 255, "a key without permitlisten published: \(plain)")
            let configured = try await fived.ssh(
                ["-N", "-o", "ExitOnForwardFailure=yes", "-R", "echo:1:127.0.0.1:9"], identity: .key(publisherKey),
                timeout: .seconds(15))
            #expect(configured.exitStatus == 255, "a configured name was published over: \(configured)")
        }
    }
}

import Foundation
import Testing

/// Public-key authentication as stock ssh does it, against authorized_keys read afresh
/// on every attempt.
@Suite("Authentication", .timeLimit(.minutes(2)))
struct AuthenticationTests {
    @Test("an unlisted key is refused (exit 255) and the failure is logged with its fingerprint")
    func unlistedKey() async throws {
        let environment = try await TestEnvironment.make()
        let stranger = try await environment.newKey(.ed25519, name: "stranger")
        try await environment.withFived(FivedOptions()) { fived in
            let result = try await fived.ssh(["-W", "echo:1"], identity: .key(stranger), stdin: try fived.input(Array("x".utf8)))
            #expect(result.exitStatus == 255, "\(result)")
            #expect(result.stderr.contains("Permission denied"), "\(result)")
            #expect(result.stdout.isEmpty)
            let logged = await fived.waitForLog { $0.message == "authentication failed" }
            let line = try #require(logged, "no 'authentication failed' line:\n\(fived.logText)")
            #expect(line["fingerprint"] == stranger.fingerprint, "\(line)")
            #expect(line["user"] == environment.user, "\(line)")
            #expect(line["client"]?.hasPrefix("127.0.0.1") == true, "\(line)")
            #expect(line["reason"]?.isEmpty == false, "\(line)")
        }
    }

    @Test("RSA keys work with rsa-sha2-512 and rsa-sha2-256; ECDSA keys work")
    func keyTypes() async throws {
        let environment = try await TestEnvironment.make()
        let rsa = try await environment.newKey(.rsa, name: "id_rsa")
        let ecdsa = try await environment.newKey(.ecdsa, name: "id_ecdsa")
        try environment.setAuthorizedKeys([environment.key.publicLine, rsa.publicLine, ecdsa.publicLine])
        try await environment.withFived(FivedOptions()) { fived in
            let data = Array("signed in\n".utf8)
            for (key, algorithm) in [(rsa, "rsa-sha2-512"), (rsa, "rsa-sha2-256"), (ecdsa, "ecdsa-sha2-nistp256")] {
                let result = try await fived.ssh(
                    ["-o", "PubkeyAcceptedAlgorithms=\(algorithm)", "-W", "echo:1"], identity: .key(key),
                    stdin: try fived.input(data))
                #expect(result.exitStatus == 0, "\(algorithm): \(result)")
                expectBytes(result.stdout, data, "\(algorithm): \(result)")
            }
            // The log names the key that was used.
            let logged = await fived.waitForLog { $0.message == "channel closed" && $0["fingerprint"] == ecdsa.fingerprint }
            #expect(logged != nil, "no channel closed line with the ECDSA fingerprint:\n\(fived.logText)")
        }
    }

    @Test("authorized_keys edited while fived runs takes effect at once")
    func liveEdit() async throws {
        let environment = try await TestEnvironment.make()
        let second = try await environment.newKey(.ed25519, name: "second")
        try await environment.withFived(FivedOptions()) { fived in
            let data = Array("hi\n".utf8)
            let before = try await fived.ssh(["-W", "echo:1"], identity: .key(second), stdin: try fived.input(data))
            #expect(before.exitStatus == 255, "not yet authorized: \(before)")

            try environment.setAuthorizedKeys([environment.key.publicLine, second.publicLine])
            let added = try await fived.ssh(["-W", "echo:1"], identity: .key(second), stdin: try fived.input(data))
            #expect(added.exitStatus == 0, "authorized by the edit: \(added)")
            expectBytes(added.stdout, data)

            try environment.setAuthorizedKeys([second.publicLine])
            let removed = try await fived.ssh(["-W", "echo:1"], stdin: try fived.input(data))
            #expect(removed.exitStatus == 255, "removed by the edit: \(removed)")
        }
    }

    @Test("%u in --authorized-keys is the SSH user name")
    func userExpansion() async throws {
        let environment = try await TestEnvironment.make()
        try environment.setAuthorizedKeys([environment.key.publicLine], file: "keys-alice")
        try environment.setAuthorizedKeys([], file: "keys-bob")
        var options = FivedOptions()
        options.authorizedKeys = []
        options.arguments = ["--authorized-keys", environment.directory.file("keys-%u")]
        try await environment.withFived(options) { fived in
            let data = Array("who\n".utf8)
            let alice = try await fived.ssh(["-W", "echo:1"], user: "alice", stdin: try fived.input(data))
            let bob = try await fived.ssh(["-W", "echo:1"], user: "bob", stdin: try fived.input(data))
            let carol = try await fived.ssh(["-W", "echo:1"], user: "carol", stdin: try fived.input(data))
            #expect(alice.exitStatus == 0, "\(alice)")
            expectBytes(alice.stdout, data)
            #expect(bob.exitStatus == 255, "\(bob)")
            #expect(carol.exitStatus == 255, "no keys-carol file at all: \(carol)")
            let logged = await fived.waitForLog { $0.message == "channel closed" && $0["user"] == "alice" }
            #expect(logged != nil, "\(fived.logText)")
        }
    }

    @Test("a key held by ssh-agent authenticates (SSH_AUTH_SOCK, no -i)")
    func agent() async throws {
        let environment = try await TestEnvironment.make()
        let agent = try await SSHAgent.start(in: environment.directory)
        try await agent.add(environment.key)
        do {
            try await environment.withFived(FivedOptions()) { fived in
                let data = Array("from the agent\n".utf8)
                let result = try await fived.ssh(
                    ["-W", "echo:1"], identity: .none, stdin: try fived.input(data), agentSocket: agent.socketPath)
                #expect(result.exitStatus == 0, "\(result)")
                expectBytes(result.stdout, data)
                let withoutAgent = try await fived.ssh(["-W", "echo:1"], identity: .none, stdin: try fived.input(data))
                #expect(withoutAgent.exitStatus == 255, "no key at all must fail: \(withoutAgent)")
            }
        } catch {
            await agent.stop()
            throw error
        }
        await agent.stop()
    }
}

import Foundation
import Testing

/// The built-in `status` table: admin keys (by `[services.status] allow`) see live
/// connections, channels and published names; every other key gets the refusal.
@Suite("Status service", .timeLimit(.minutes(2)))
struct StatusTests {
    @Test("an admin key sees every live connection, its channels and published names; another key is refused")
    func table() async throws {
        let environment = try await TestEnvironment.make()
        let admin = try await environment.newKey(.ed25519, name: "id_admin", comment: "admin@ops")
        let publisher = try await environment.newKey(.ed25519, name: "id_pub", comment: "pub@ops")
        try environment.setAuthorizedKeys([
            environment.key.authorizedLine(), admin.authorizedLine(),
            publisher.authorizedLine(options: "permitlisten=\"myapp:*\""),
        ])
        let options = FivedOptions(
            extraTOML: "[services.status]\nallow = [\"admin@ops\"]\n")
        try await environment.withFived(options) { fived in
            // A user with an open echo channel that has moved 6 bytes each way,
            // and a publisher holding a name.
            let user = try fived.spawnSSH(["-W", "echo:1"], stdin: .pipe, name: "echo-client")
            defer { user.signal(SIGTERM) }
            try await user.writeStdin(Array("hello\n".utf8))
            #expect(await eventually { user.stdout == Array("hello\n".utf8) }, "the echo channel did not answer: \(user.stderr)")
            let pub = try fived.spawnSSH(["-N", "-R", "myapp:1:127.0.0.1:9"], identity: .key(publisher), name: "publisher")
            defer { pub.signal(SIGTERM) }
            #expect(await fived.waitForLog { $0.message == "published" } != nil, "\(fived.logText)")

            for form in [["-W", "status:1"], []] {
                let shown = try await fived.ssh(form, command: form.isEmpty ? ["status"] : [], identity: .key(admin))
                #expect(shown.exitStatus == 0, "\(shown)")
                let lines = shown.stdoutText.split(separator: "\n").map(String.init)
                #expect(lines.first?.contains("3 connections (0 unauthenticated), 2 channels, 1 published name") == true, "\(shown.stdoutText)")
                // Connections: one row per key, with user, fingerprint, client and age.
                for key in [environment.key, admin, publisher] {
                    let row = lines.first { $0.contains(key.fingerprint) }
                    #expect(row?.contains(" \(environment.user) ") == true && row?.contains("127.0.0.1:") == true, "\(key.comment): \(shown.stdoutText)")
                }
                // Channels: the echo channel with its bytes, and the status channel itself.
                let echo = try #require(lines.first { $0.contains(" echo ") }, "\(shown.stdoutText)")
                #expect(echo.split(separator: " ").filter { !$0.isEmpty }.dropFirst(3).prefix(4) == ["echo", "direct-tcpip", "6", "6"], "\(echo)")
                let form = form.isEmpty ? "exec" : "direct-tcpip"
                #expect(lines.contains { $0.contains(" status ") && $0.contains(" \(form) ") }, "\(shown.stdoutText)")
                // Published names: myapp, held by the publisher's connection.
                let published = try #require(lines.first { $0.hasPrefix("myapp ") }, "\(shown.stdoutText)")
                let holder = try #require(lines.first { $0.contains(publisher.fingerprint) }?.split(separator: " ").first)
                #expect(published.split(separator: " ")[1] == holder, "\(published)")
            }

            // Any other key: the same refusal as an unknown name, both forms.
            let refused = try await fived.ssh(command: ["status"])
            #expect(refused.exitStatus == 1 && refused.stdout.isEmpty, "\(refused)")
            #expect(refused.stderr.contains("fived: service not available"), "\(refused)")
            let unknown = try await fived.ssh(command: ["no-such-service"])
            #expect(unknown.stderr == refused.stderr && unknown.exitStatus == refused.exitStatus, "\(unknown) vs \(refused)")
            let direct = try await fived.ssh(["-W", "status:1"])
            #expect(direct.exitStatus == 255 && direct.stdout.isEmpty, "\(direct)")
            #expect(await fived.waitForLog { $0["reason"] == "the status allow list does not admit the key" } != nil)
        }
    }

    @Test("with no allow list nobody sees the table, and help does not list it")
    func nobodyByDefault() async throws {
        let environment = try await TestEnvironment.make()
        try await environment.withFived { fived in
            let refused = try await fived.ssh(command: ["status"])
            #expect(refused.exitStatus == 1 && refused.stdout.isEmpty, "\(refused)")
            let help = try await fived.ssh(command: ["help"])
            #expect(help.stdoutText == "echo\n", "\(help)")
        }
    }
}

import Foundation
import Testing

/// authorized_keys options and service allow lists, end to end (the policy itself is
/// unit-tested in FivedCoreTests; this checks the daemon applies it on the wire).
@Suite("Access options", .timeLimit(.minutes(2)))
struct AccessOptionTests {
    static let services: [TestService] = [
        .exec("echo", "/bin/cat"),
        .exec("sha256", "/usr/bin/sha256sum"),
    ]

    /// A key per option line, all in one authorized_keys file.
    struct Keys {
        let restricted, permitOpen, restrictPortForwarding, forcedCommand, fromElsewhere, fromHere, expired, unknownOption: ClientKey
    }

    static func makeKeys(_ environment: TestEnvironment) async throws -> Keys {
        async let a = environment.newKey(.ed25519, name: "restricted")
        async let b = environment.newKey(.ed25519, name: "permitopen")
        async let c = environment.newKey(.ed25519, name: "restrict-pf")
        async let d = environment.newKey(.ed25519, name: "forced")
        async let e = environment.newKey(.ed25519, name: "from-elsewhere")
        async let f = environment.newKey(.ed25519, name: "from-here")
        async let g = environment.newKey(.ed25519, name: "expired")
        async let h = environment.newKey(.ed25519, name: "unknown-option")
        let keys = try await Keys(
            restricted: a, permitOpen: b, restrictPortForwarding: c, forcedCommand: d, fromElsewhere: e,
            fromHere: f, expired: g, unknownOption: h)
        try environment.setAuthorizedKeys([
            environment.key.publicLine,
            keys.restricted.authorizedLine(options: "restrict"),
            keys.permitOpen.authorizedLine(options: #"permitopen="echo:*""#),
            keys.restrictPortForwarding.authorizedLine(options: #"restrict,port-forwarding,permitopen="echo:1""#),
            keys.forcedCommand.authorizedLine(options: #"restrict,command="echo""#),
            keys.fromElsewhere.authorizedLine(options: #"from="10.0.0.0/8,!127.0.0.1""#),
            keys.fromHere.authorizedLine(options: #"from="127.0.0.0/8""#),
            keys.expired.authorizedLine(options: #"expiry-time="20000101""#),
            keys.unknownOption.authorizedLine(options: "no-such-option-for-sure"),
        ])
        return keys
    }

    @Test("restrict, permitopen, port-forwarding, command=, from=, expiry-time=, unknown options")
    func options() async throws {
        let environment = try await TestEnvironment.make()
        let keys = try await Self.makeKeys(environment)
        try await environment.withFived(FivedOptions(services: Self.services)) { fived in
            let data = Array("payload\n".utf8)
            func stdio(_ key: ClientKey, _ service: String) async throws -> ProcessResult {
                try await fived.ssh(["-W", "\(service):1"], identity: .key(key), stdin: try fived.input(data))
            }
            let reference = try await fived.ssh(["-W", "no-such-service:1"], stdin: try fived.input(data))
            let refusal = try #require(openFailureLine(reference), "\(reference)")

            let restricted = try await stdio(keys.restricted, "echo")
            #expect(restricted.exitStatus == 255 && openFailureLine(restricted) == refusal, "restrict must deny -W: \(restricted)")

            let permitted = try await stdio(keys.permitOpen, "echo")
            #expect(permitted.exitStatus == 0, "permitopen=echo:*: \(permitted)")
            expectBytes(permitted.stdout, data)
            let notPermitted = try await stdio(keys.permitOpen, "sha256")
            #expect(openFailureLine(notPermitted) == refusal, "permitopen must limit to echo: \(notPermitted)")

            let reenabled = try await stdio(keys.restrictPortForwarding, "echo")
            #expect(reenabled.exitStatus == 0, "restrict,port-forwarding,permitopen: \(reenabled)")
            let reenabledOther = try await stdio(keys.restrictPortForwarding, "sha256")
            #expect(openFailureLine(reenabledOther) == refusal, "\(reenabledOther)")

            // command="echo": every session channel goes to echo, whatever it names.
            let forced = try await fived.ssh(command: ["sha256"], identity: .key(keys.forcedCommand), stdin: try fived.input(data))
            #expect(forced.exitStatus == 0, "\(forced)")
            expectBytes(forced.stdout, data, "command=\"echo\" must force the session to echo")
            let forcedStdio = try await stdio(keys.forcedCommand, "echo")
            #expect(forcedStdio.exitStatus == 255, "command= does not open direct-tcpip (and restrict denies it): \(forcedStdio)")

            let elsewhere = try await stdio(keys.fromElsewhere, "echo")
            #expect(elsewhere.exitStatus == 255, "from= excludes 127.0.0.1: \(elsewhere)")
            let here = try await stdio(keys.fromHere, "echo")
            #expect(here.exitStatus == 0, "from=127.0.0.0/8: \(here)")

            let expired = try await stdio(keys.expired, "echo")
            #expect(expired.exitStatus == 255, "expiry-time in 2000: \(expired)")

            let unknown = try await stdio(keys.unknownOption, "echo")
            #expect(unknown.exitStatus == 255, "a line with an option sshd does not know is not honoured: \(unknown)")
            #expect(fived.logText.contains("no-such-option-for-sure"), "the unknown option is not logged:\n\(fived.logText)")
        }
    }

    @Test("allow lists admit by key comment, by fingerprint and by user")
    func allowLists() async throws {
        let environment = try await TestEnvironment.make()
        let other = try await environment.newKey(.ed25519, name: "other", comment: "other@elsewhere")
        try environment.setAuthorizedKeys([environment.key.publicLine, other.publicLine])
        let options = FivedOptions(services: [
            .exec("by-comment", "/bin/cat", allow: [environment.key.comment]),
            .exec("by-fingerprint", "/bin/cat", allow: [environment.key.fingerprint]),
            .exec("by-user", "/bin/cat", allow: ["user:alice"]),
        ])
        try await environment.withFived(options) { fived in
            let data = Array("ok\n".utf8)
            for service in ["by-comment", "by-fingerprint"] {
                let mine = try await fived.stdio(service, data)
                #expect(mine.exitStatus == 0, "\(service), admitted key: \(mine)")
                let theirs = try await fived.ssh(["-W", "\(service):1"], identity: .key(other), stdin: try fived.input(data))
                #expect(theirs.exitStatus == 255 && openFailureLine(theirs) != nil, "\(service), other key: \(theirs)")
            }
            let alice = try await fived.ssh(["-W", "by-user:1"], user: "alice", stdin: try fived.input(data))
            #expect(alice.exitStatus == 0, "\(alice)")
            let tester = try await fived.stdio("by-user", data)
            #expect(tester.exitStatus == 255, "\(tester)")
        }
    }

    @Test("the status table opens for an admin (by its allow list) and looks unknown to others")
    func status() async throws {
        let options = FivedOptions(
            extraTOML: "[services.status]\nallow = [\"user:admin\"]\n")
        try await TestEnvironment.withFived(options) { fived in
            let admin = try await fived.ssh(command: ["status"], user: "admin")
            #expect(admin.exitStatus == 0, "\(admin)")
            #expect(!admin.stdout.isEmpty, "an empty status table: \(admin)")
            let user = try await fived.ssh(["-W", "status:1"], stdin: try fived.input([]))
            let unknown = try await fived.ssh(["-W", "no-such-service:1"], stdin: try fived.input([]))
            #expect(user.exitStatus == 255, "\(user)")
            #expect(openFailureLine(user) == openFailureLine(unknown), "\(user)\n\(unknown)")
        }
    }
}

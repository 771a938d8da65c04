#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A failed login says, in its one `authentication failed` line, which authorized_keys
/// files were read for the user, which were missing or not safe to read, and which
/// line refused the key: a real ssh login failing for each reason.
@Suite("Authentication failures, explained", .timeLimit(.minutes(2)))
struct AuthenticationFailureTests {
    /// The `authentication failed` line for `user`, waited for.
    static func failure(_ fived: Fived, user: String) async throws -> LogLine {
        let line = await fived.waitForLog { $0.message == "authentication failed" && $0["user"] == user }
        return try #require(line, "no 'authentication failed' line for \(user):\n\(fived.logText)")
    }

    /// The home directory of `user` in the password database.
    static func home(of user: String) -> String? {
        guard let entry = getpwnam(user), let dir = entry.pointee.pw_dir else { return nil }
        return String(cString: dir)
    }

    @Test("a key no file lists: the files read are named, nothing missing")
    func notListed() async throws {
        let environment = try await TestEnvironment.make()
        let stranger = try await environment.newKey(.ed25519, name: "stranger")
        try await environment.withFived { fived in
            let result = try await fived.ssh(["-W", "echo:1"], identity: .key(stranger))
            #expect(result.exitStatus == 255, "\(result)")
            let line = try await Self.failure(fived, user: environment.user)
            #expect(line["reason"] == "key not listed in any authorized_keys file", "\(line)")
            #expect(line["files"] == environment.authorizedKeysPath, "\(line)")
            #expect(line["fingerprint"] == stranger.fingerprint, "\(line)")
            #expect(line["missing"] == nil && line["unsafe"] == nil && line["unreadable"] == nil, "\(line)")
        }
    }

    @Test("missing files and relative paths: expanded and taken from the user's home, as sshd does")
    func missingAndRelative() async throws {
        let environment = try await TestEnvironment.make()
        let stranger = try await environment.newKey(.ed25519, name: "stranger")
        let absent = environment.directory.file("absent_keys")
        let nobodyHome = try #require(Self.home(of: "nobody"), "no user nobody here")
        var options = FivedOptions()
        options.authorizedKeys = [absent, "rel_keys", "%h/.ssh/authorized_keys", environment.authorizedKeysPath]
        try await environment.withFived(options) { fived in
            // nobody exists: its home is where the relative and %h paths point.
            #expect(try await fived.ssh(["-W", "echo:1"], identity: .key(stranger), user: "nobody").exitStatus == 255)
            let nobody = try await Self.failure(fived, user: "nobody")
            #expect(nobody["files"] == environment.authorizedKeysPath, "\(nobody)")
            #expect(nobody["missing"] == "\(absent), \(nobodyHome)/rel_keys, \(nobodyHome)/.ssh/authorized_keys", "\(nobody)")
            #expect(nobody["reason"] == "key not listed in any authorized_keys file", "\(nobody)")

            // A user with no passwd entry has no home: the patterns that need one say so.
            #expect(try await fived.ssh(["-W", "echo:1"], identity: .key(stranger)).exitStatus == 255)
            let tester = try await Self.failure(fived, user: environment.user)
            #expect(
                tester["missing"] == "\(absent), rel_keys (tester has no home directory), %h/.ssh/authorized_keys (tester has no home directory)",
                "\(tester)")
        }
    }

    @Test("unsafe files are not read, as sshd's StrictModes: group-writable file or directory, another owner")
    func unsafe() async throws {
        let environment = try await TestEnvironment.make()
        let directory = environment.directory
        for user in ["modes", "dirs", "owner"] {
            mkdir(directory.file(user), 0o755)
            try environment.setAuthorizedKeys([environment.key.publicLine], file: "\(user)/authorized_keys")
        }
        chmod(directory.file("modes/authorized_keys"), 0o664)
        chmod(directory.file("dirs"), 0o775)
        let canChown = getuid() == 0
        if canChown { chown(directory.file("owner/authorized_keys"), 54321, 54321) }
        var options = FivedOptions()
        options.authorizedKeys = [directory.file("%u/authorized_keys")]
        try await environment.withFived(options) { fived in
            let data = Array("safe\n".utf8)
            var expected = [
                "modes": "\(directory.file("modes/authorized_keys")) (file is writable by group (mode 664))",
                "dirs": "\(directory.file("dirs/authorized_keys")) (directory \(directory.file("dirs")) is writable by group (mode 775))",
            ]
            if canChown { expected["owner"] = "\(directory.file("owner/authorized_keys")) (owned by uid 54321, not root or the user)" }
            for (user, unsafe) in expected.sorted(by: { $0.key < $1.key }) {
                let result = try await fived.ssh(["-W", "echo:1"], user: user, stdin: try fived.input(data))
                #expect(result.exitStatus == 255, "\(user): an unsafe file admitted the key: \(result)")
                let line = try await Self.failure(fived, user: user)
                #expect(line["unsafe"] == unsafe, "\(user): \(line)")
                #expect(line["reason"] == "no authorized_keys file could be read" && line["files"] == "", "\(user): \(line)")
            }
            // The same key, once the file is safe, logs in: it was the modes.
            chmod(directory.file("modes/authorized_keys"), 0o600)
            let fixed = try await fived.ssh(["-W", "echo:1"], user: "modes", stdin: try fived.input(data))
            #expect(fixed.exitStatus == 0, "\(fixed)")
            expectBytes(fixed.stdout, data)
        }
    }

    @Test("a key whose lines refuse it by their options: each line and why, in the reason")
    func refusedByOptions() async throws {
        let environment = try await TestEnvironment.make()
        try environment.setAuthorizedKeys([environment.key.authorizedLine(options: "from=\"10.0.0.0/8\"")])
        try environment.setAuthorizedKeys(["# expired", environment.key.authorizedLine(options: "expiry-time=\"20200101\"")], file: "second_keys")
        var options = FivedOptions()
        options.authorizedKeys = [environment.authorizedKeysPath, environment.directory.file("second_keys")]
        try await environment.withFived(options) { fived in
            #expect(try await fived.ssh(["-W", "echo:1"]).exitStatus == 255)
            let line = try await Self.failure(fived, user: environment.user)
            let second = environment.directory.file("second_keys")
            #expect(line["files"] == "\(environment.authorizedKeysPath), \(second)", "\(line)")
            let reason = line["reason"] ?? ""
            #expect(reason.hasPrefix("key refused: "), "\(line)")
            #expect(reason.contains("\(environment.authorizedKeysPath):1: client address not in from=\"10.0.0.0/8\""), "\(line)")
            #expect(reason.contains("\(second):2: key expired at "), "\(line)")
        }
    }
}

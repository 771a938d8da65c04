#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `fived --check` notes authorized_keys patterns that will not do what they seem to:
/// a relative path (taken from each user's home, so `--authorized-keys id.pub` means
/// ~/id.pub), a file that does not exist, one fived would not read for its modes.
/// Notes never change the exit status.
@Suite("--check notes on authorized_keys", .timeLimit(.minutes(2)))
struct CheckNotesTests {
    func check(_ environment: TestEnvironment, _ authorizedKeys: [String]) async throws -> ProcessResult {
        var arguments = ["--listen", "127.0.0.1:0", "--host-key", environment.directory.file("host_key"), "--service", "echo=tcp:127.0.0.1:7", "--check"]
        for path in authorizedKeys { arguments += ["--authorized-keys", path] }
        return try await environment.runFived(arguments)
    }

    func notes(_ result: ProcessResult) -> [String] {
        result.stdoutText.split(separator: "\n").filter { $0.hasPrefix("note: authorized_keys") }.map(String.init)
    }

    @Test("a relative path that does not exist for the user running the check")
    func relative() async throws {
        let environment = try await TestEnvironment.make()
        let name = "fived-check-\(UInt32.random(in: 0...UInt32.max)).pub"
        let home = try #require(getpwuid(geteuid()).flatMap { $0.pointee.pw_dir.map { String(cString: $0) } })
        let result = try await check(environment, [name, environment.authorizedKeysPath])
        #expect(result.exitStatus == 0, "\(result)")
        let notes = notes(result)
        #expect(notes.count == 1, "\(result)")
        let note = try #require(notes.first)
        #expect(note.contains("\(name) is a relative path") && note.contains("\(home)/\(name)") && note.contains("does not exist"), "\(note)")
    }

    @Test("a missing file, and one that group or others may write")
    func missingAndUnsafe() async throws {
        let environment = try await TestEnvironment.make()
        let absent = environment.directory.file("absent_keys")
        let loose = try environment.directory.write("loose_keys", environment.key.publicLine + "\n", mode: 0o666)
        let result = try await check(environment, [absent, loose, environment.authorizedKeysPath, "%h/.ssh/authorized_keys"])
        #expect(result.exitStatus == 0, "\(result)")
        #expect(
            notes(result) == [
                "note: authorized_keys \(absent) does not exist",
                "note: authorized_keys \(loose) will not be read: file is writable by group (mode 666) (as sshd's StrictModes)",
            ], "\(result)")
    }

    @Test("existing, safe files and %h patterns: no note")
    func quiet() async throws {
        let environment = try await TestEnvironment.make()
        let result = try await check(environment, [environment.authorizedKeysPath, "%h/.ssh/authorized_keys", "/etc/%u_keys"])
        #expect(result.exitStatus == 0, "\(result)")
        #expect(notes(result) == [], "\(result)")
    }
}

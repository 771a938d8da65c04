#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `authorized_keys_command` (sshd's AuthorizedKeysCommand): run as
/// `authorized_keys_command_user` for a key no file lists, its output read as
/// authorized_keys lines; a command that prints nothing, hangs past 5 s or
/// exits non-zero refuses the key, and never holds up another login.
@Suite("authorized_keys_command", .timeLimit(.minutes(2)))
struct AuthorizedKeysCommandTests {
    @Test("a key the command prints gets in; nothing printed, a hang, a non-zero exit refuse it, each logged, and a hang holds up nobody else")
    func keysByCommand() async throws {
        let environment = try await TestEnvironment.make()
        let printed = try await environment.newKey(.ed25519, name: "printed")
        let silent = try await environment.newKey(.ed25519, name: "silent")
        let hangs = try await environment.newKey(.ed25519, name: "hangs")
        let fails = try await environment.newKey(.ed25519, name: "fails")
        // The command sees the tokens as arguments; its log proves what it was given and as whom.
        let log = environment.directory.file("akc.log")
        let script = try environment.directory.write(
            "akc.sh",
            """
            #!/bin/sh
            # $1 user, $2 fingerprint, $3 type, $4 key (base64)
            echo "$(id -un) $1 $2 $3" >> \(log)
            case "$2" in
            \(printed.fingerprint)) echo "$3 $4 printed-by-command" ;;
            \(silent.fingerprint)) ;;
            \(hangs.fingerprint)) exec sleep 30 ;;
            \(fails.fingerprint)) echo "$3 $4"; exit 3 ;;
            esac

            """, mode: 0o755)
        let fd = open(log, O_CREAT | O_WRONLY, 0o666)
        close(fd)
        chmod(log, 0o666)
        let commandUser = TestDirectory.asRoot ? "nobody" : String(cString: getpwuid(geteuid()).pointee.pw_name)
        let options = FivedOptions(
            extraTOML: """
                authorized_keys_command = "\(script) %u %f %t %k"
                authorized_keys_command_user = "\(commandUser)"
                """)
        try await environment.withFived(options) { fived in
            // The environment's own key is in the file: the command is not run for it.
            let fromFile = try await fived.stdio("echo", Array("file\n".utf8))
            #expect(fromFile.stdoutText == "file\n", "\(fromFile)")

            // A hang, and meanwhile a key the command prints.
            async let hung = fived.ssh(command: ["echo"], identity: .key(hangs), timeout: .seconds(40))
            try await Task.sleep(for: .milliseconds(300))
            let started = ContinuousClock.now
            let good = try await fived.ssh(command: ["echo"], identity: .key(printed), stdin: try fived.input(Array("cmd\n".utf8)))
            let goodTook = ContinuousClock.now - started
            #expect(good.exitStatus == 0 && good.stdoutText == "cmd\n", "\(good)")
            let hangRun = try await hung
            let hangTook = ContinuousClock.now - started
            #expect(hangRun.exitStatus == 255, "\(hangRun)")
            #expect(goodTook < hangTook, "a hanging command held up another login: \(goodTook) vs \(hangTook)")

            let nothing = try await fived.ssh(command: ["echo"], identity: .key(silent))
            #expect(nothing.exitStatus == 255, "\(nothing)")
            let failed = try await fived.ssh(command: ["echo"], identity: .key(fails))
            #expect(failed.exitStatus == 255, "\(failed)")

            let lines = fived.logLines
            let admitted = lines.first { $0.message == "authenticated" && $0["fingerprint"] == printed.fingerprint }
            #expect(admitted?["key_file"] == "authorized_keys_command:1" && admitted?["comment"] == "printed-by-command", "\(fived.logText)")
            func refusal(_ key: ClientKey) -> String? {
                lines.last { $0.message == "authentication failed" && $0["fingerprint"] == key.fingerprint }?["reason"]
            }
            #expect(refusal(hangs)?.contains("timed out after 5") == true, "\(fived.logText)")
            #expect(refusal(fails)?.contains("exited with status 3") == true, "\(fived.logText)")
            #expect(refusal(silent) != nil && refusal(silent)?.contains("timed out") == false, "\(fived.logText)")
            // The hung command was killed, not left behind.
            #expect(await eventually { fived.descendants().isEmpty }, "still running: \(fived.descendants())")
        }
        let calls = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(calls.contains { $0 == "\(commandUser) \(environment.user) \(printed.fingerprint) ssh-ed25519" }, "\(calls)")
        #expect(!calls.contains { $0.contains(environment.key.fingerprint) }, "the command ran for a key the file lists: \(calls)")
    }
}

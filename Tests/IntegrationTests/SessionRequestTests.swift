import Foundation
import Testing

/// Session requests fived declines (pty, env) leave the channel usable; what an exec
/// backend learns about its caller.
@Suite("Session requests and caller identity", .timeLimit(.minutes(2)))
struct SessionRequestTests {
    @Test("a pty request is declined and the session goes on (ssh at a terminal, no -t)")
    func ptyDeclined() async throws {
        // Stock ssh treats a refused pty as fatal only when -t/-tt forced it; at a terminal
        // (RequestTTY=auto) it warns and goes on, which is what a user sees.
        try await TestEnvironment.withFived(FivedOptions()) { fived in
            let result = try await fived.ssh(stdin: .terminal)
            #expect(result.stderr.contains("PTY allocation request failed"), "no pty was asked for: \(result)")
            #expect(result.exitStatus == 1, "the shell form after a declined pty: \(result)")
            #expect(result.stderr.contains("echo"), "the help list after a declined pty: \(result)")
        }
    }

    @Test("ssh -tt: fived declines the pty; stock ssh gives up by itself (its rule), fived stays up")
    func forcedPty() async throws {
        try await TestEnvironment.withFived(FivedOptions()) { fived in
            let forced = try await fived.ssh(["-tt", "-e", "none"], command: ["echo"], stdin: try fived.input(Array("x\n".utf8)))
            #expect(forced.stderr.contains("PTY allocation request failed"), "\(forced)")
            let after = try await fived.stdio("echo", Array("still serving".utf8))
            #expect(after.stdoutText == "still serving", "\(after)")
        }
    }

    @Test("env requests are declined: the backend never sees them; the FIVED_* and UCSPI names are there")
    func environment() async throws {
        let environment = try await TestEnvironment.make()
        var options = FivedOptions(services: [.exec("env", "/usr/bin/env")])
        options.environment = ["FIVED_TEST_SECRET": "do-not-leak"]
        try await environment.withFived(options) { fived in
            let result = try await fived.ssh(["-o", "SetEnv=FOO=bar"], command: ["env"])
            #expect(result.exitStatus == 0, "\(result)")
            var seen: [String: String] = [:]
            for line in nonEmptyLines(result.stdoutText) {
                guard let equals = line.firstIndex(of: "=") else { continue }
                seen[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            #expect(seen["FOO"] == nil, "an env request reached the backend: \(result)")
            #expect(seen["FIVED_TEST_SECRET"] == nil, "fived's own environment leaked: \(result)")
            #expect(seen["FIVED_SERVICE"] == "env", "\(result)")
            #expect(seen["FIVED_USER"] == environment.user, "\(result)")
            #expect(seen["FIVED_KEY_FINGERPRINT"] == environment.key.fingerprint, "\(result)")
            #expect(seen["FIVED_KEY_COMMENT"] == environment.key.comment, "\(result)")
            #expect(seen["FIVED_CLIENT_ADDR"] == "127.0.0.1", "\(result)")
            #expect(seen["FIVED_CLIENT_PORT"].flatMap { UInt16($0) } != nil, "\(result)")
            #expect(seen["PROTO"] == "TCP", "\(result)")
            #expect(seen["TCPREMOTEIP"] == "127.0.0.1", "\(result)")
            #expect(seen["TCPREMOTEPORT"] == seen["FIVED_CLIENT_PORT"], "\(result)")
            #expect(seen["TCPLOCALIP"] == "127.0.0.1", "\(result)")
            #expect(seen["TCPLOCALPORT"] == String(fived.port), "\(result)")

            // The same over direct-tcpip, after a declined env request on another channel.
            let stdio = try await fived.stdio("env", [])
            #expect(stdio.exitStatus == 0, "\(stdio)")
            #expect(stdio.stdoutText.contains("FIVED_SERVICE=env"), "\(stdio)")
        }
    }
}

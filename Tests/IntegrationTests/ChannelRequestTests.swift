#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Channel and global requests as RFC 4254 and OpenSSH's extensions define them:
/// one reply per want-reply request, none otherwise, nothing after CLOSE;
/// `eow@openssh.com` ends a service's output as sshd does; after
/// `no-more-sessions@openssh.com` a session open ends the connection.
@Suite("Channel requests", .timeLimit(.minutes(2)))
struct ChannelRequestTests {
    static let services: [TestService] = [.exec("echo", "/bin/cat"), .exec("yes", "/usr/bin/yes")]

    /// Runs a request_peer.py scenario; returns its RESULT line and the count of
    /// messages fived sent for a channel after that channel's CLOSE.
    func run(_ fived: Fived, _ scenario: String) async throws -> (result: String, afterClose: Int) {
        let run = try await Peers.run(
            "request_peer.py", [String(fived.port), fived.environment.key.privatePath, fived.environment.user, scenario], in: fived.directory)
        let result = try Peers.result(of: run)
        let after = try #require(run.stdoutText.split(separator: "\n").first { $0.hasPrefix("AFTER-CLOSE ") }, "no AFTER-CLOSE line: \(run)")
        let count = Int(after.split(separator: " ")[1]) ?? -1
        return (result, count)
    }

    @Test("every want-reply request gets exactly one reply, requests without want-reply none, on session and direct-tcpip channels")
    func oneReplyPerRequest() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            // winadj@putty, break, xon-xoff, env and an unknown name with want-reply (5 replies,
            // all FAILURE: fived grants none of them); simple@putty and an unknown name without.
            for scenario in ["replies-session", "replies-direct"] {
                let (result, afterClose) = try await run(fived, scenario)
                #expect(result == "echo ok replies FFFFF", "\(scenario): \(result)")
                #expect(afterClose == 0, "\(scenario): a message after CLOSE")
            }
        }
    }

    @Test("eow@openssh.com: the service's output stops, the program ends on EPIPE, the channel closes")
    func endOfWriting() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let (result, afterClose) = try await run(fived, "eow")
            // yes dies of SIGPIPE, or (a write already blocked on the full socketpair
            // when fived shut its read side gets EPIPE without the signal on Linux)
            // exits 1 with "Broken pipe": either way it ends and the channel closes.
            #expect(result == "closed exit-signal" || result == "closed exit-status", "\(result)")
            #expect(afterClose == 0)
            #expect(await eventually(timeout: .seconds(10)) { fived.descendants().isEmpty }, "yes still runs: \(fived.descendants())")
        }
    }

    @Test("ssh host yes | head -c 5 returns at once, as against sshd")
    func yesIntoHead() async throws {
        let environment = try await TestEnvironment.make()
        try await environment.withFived(FivedOptions(services: Self.services)) { fived in
            let ssh = try Tools.path("ssh")
            let command = ([ssh] + fived.sshArguments([], command: ["yes"], key: environment.key, user: nil))
                .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            let started = ContinuousClock.now
            let result = try await runProcess(
                "/bin/sh", ["-c", "\(command) | head -c 5"], environment: Tools.environment(home: fived.directory.path),
                scratch: fived.directory.path, timeout: .seconds(20))
            let elapsed = ContinuousClock.now - started
            #expect(!result.timedOut, "ssh kept swallowing yes's output: \(result)")
            #expect(result.stdoutText == "y\ny\ny", "\(result)")
            // sshd answers within a second; before eow, this never ended. The bound leaves
            // room for a loaded 2-core test machine starting ssh.
            #expect(elapsed < .seconds(15), "took \(elapsed)")
            let closed = await fived.waitForLog { $0.message == "channel closed" && $0["service"] == "yes" }
            #expect(closed != nil, "\(fived.logText)")
            #expect(await eventually(timeout: .seconds(10)) { fived.descendants().isEmpty }, "yes still runs: \(fived.descendants())")
        }
    }

    @Test("no-more-sessions@openssh.com: direct-tcpip still opens; a later session open ends the connection, as in sshd")
    func noMoreSessions() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let (result, _) = try await run(fived, "no-more-sessions")
            #expect(result == "first ok direct ok second refused disconnected", "\(result)")
            let logged = await fived.waitForLog {
                $0.message == "protocol violation" && ($0["reason"] ?? "").contains("session open after no-more-sessions")
            }
            #expect(logged != nil, "\(fived.logText)")
            // Stock ssh sends no-more-sessions after its one session: it still works.
            let plain = try await fived.ssh(command: ["echo"], stdin: try fived.input(Array("hi".utf8)))
            #expect(plain.exitStatus == 0 && plain.stdoutText == "hi", "\(plain)")
        }
    }
}

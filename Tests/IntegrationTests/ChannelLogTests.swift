import Foundation
import Testing

/// Each channel's end is one log line saying who, which service and form, bytes each
/// way, how long, and why.
@Suite("Channel log", .timeLimit(.minutes(2)))
struct ChannelLogTests {
    @Test("channel closed lines carry user, fingerprint, client, service, form, byte counts, duration, reason")
    func channelClosed() async throws {
        let environment = try await TestEnvironment.make()
        let options = FivedOptions(services: [
            .exec("echo", "/bin/cat"),
            .exec("download", "/bin/sh", "-c", "head -c 300000 /dev/zero"),
        ])
        try await environment.withFived(options) { fived in
            let upload = randomBytes(123_457)
            let stdio = try await fived.stdio("echo", upload)
            #expect(stdio.exitStatus == 0, "\(stdio)")
            let exec = try await fived.ssh(command: ["download"])
            #expect(exec.stdout.count == 300_000, "\(exec)")
            let subsystem = try await fived.ssh(["-s"], command: ["Echo"], stdin: try fived.input(Array("abc".utf8)))
            #expect(subsystem.stdoutText == "abc", "\(subsystem)")

            let stdioLine = try #require(
                await fived.waitForLog { $0.message == "channel closed" && $0["bytes_in"] == "123457" },
                "no channel closed line with bytes_in=123457:\n\(fived.logText)")
            #expect(stdioLine["service"] == "echo", "\(stdioLine)")
            #expect(stdioLine["form"] == "direct-tcpip", "\(stdioLine)")
            #expect(stdioLine["bytes_out"] == "123457", "\(stdioLine)")
            #expect(stdioLine["user"] == environment.user, "\(stdioLine)")
            #expect(stdioLine["fingerprint"] == environment.key.fingerprint, "\(stdioLine)")
            #expect(stdioLine["client"]?.hasPrefix("127.0.0.1:") == true, "\(stdioLine)")
            #expect(stdioLine["duration_ms"].flatMap { Int($0) } != nil, "\(stdioLine)")
            #expect(stdioLine["reason"]?.isEmpty == false, "\(stdioLine)")

            let execLine = try #require(
                await fived.waitForLog { $0.message == "channel closed" && $0["service"] == "download" },
                "\(fived.logText)")
            #expect(execLine["bytes_out"] == "300000", "\(execLine)")
            #expect(execLine["bytes_in"] == "0", "\(execLine)")
            #expect(execLine["form"]?.contains("exec") == true, "\(execLine)")

            let subsystemLine = try #require(
                await fived.waitForLog { $0.message == "channel closed" && $0["bytes_in"] == "3" }, "\(fived.logText)")
            #expect(subsystemLine["service"] == "echo", "the canonical name: \(subsystemLine)")
            #expect(subsystemLine["form"]?.contains("subsystem") == true, "\(subsystemLine)")
            #expect(subsystemLine["bytes_out"] == "3", "\(subsystemLine)")
        }
    }
}

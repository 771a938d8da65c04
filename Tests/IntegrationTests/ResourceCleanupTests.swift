#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A client that dies without a word leaves nothing behind in fived: no backend
/// process, no descriptor.
@Suite("Resource cleanup", .timeLimit(.minutes(2)))
struct ResourceCleanupTests {
    @Test("kill -9 of ssh mid-stream (cat) and during a sleep 1000 exec leaves no child and no extra fd")
    func killedClients() async throws {
        let options = FivedOptions(services: [
            .exec("cat", "/bin/cat"),
            .exec("sleeper", "/bin/sleep", "1000"),
        ])
        try await TestEnvironment.withFived(options) { fived in
            // Warm up, so lazily made descriptors are in the baseline.
            let warm = try await fived.stdio("cat", Array("warm".utf8))
            #expect(warm.stdoutText == "warm", "\(warm)")
            let idle = await eventually(timeout: .seconds(5)) { fived.descendants().isEmpty }
            #expect(idle, "children after a clean channel end: \(fived.descendants())")
            try await Task.sleep(for: .milliseconds(300))
            let baseline = fived.openDescriptors()

            let streaming = try fived.spawnSSH(["-W", "cat:1"], stdin: .pipe, name: "ssh-cat")
            let sleeperExec = try fived.spawnSSH(command: ["sleeper"], stdin: .pipe, name: "ssh-sleep-exec")
            let sleeperStdio = try fived.spawnSSH(["-W", "sleeper:1"], stdin: .pipe, name: "ssh-sleep-stdio")
            let chunk = randomBytes(64 * 1024)
            try await streaming.writeStdin(chunk)
            let midStream = await eventually(timeout: .seconds(15)) { streaming.stdout.count >= chunk.count }
            #expect(midStream, "cat did not echo: \(streaming.stderr)")
            let running = await eventually(timeout: .seconds(15)) { fived.descendants().count >= 3 }
            #expect(running, "expected 3 backend processes, saw \(fived.descendants())")
            for client in [streaming, sleeperExec, sleeperStdio] {
                client.signal(SIGKILL)
                _ = await client.wait(timeout: .seconds(5))
            }

            let childrenGone = await eventually(timeout: .seconds(15)) { fived.descendants().isEmpty }
            #expect(childrenGone, "backends left behind: \(fived.descendants())")
            let descriptorsBack = await eventually(timeout: .seconds(15)) {
                fived.openDescriptors().count <= baseline.count
            }
            let now = fived.openDescriptors()
            #expect(descriptorsBack, "fds before: \(baseline.sorted { $0.key < $1.key })\nfds after: \(now.sorted { $0.key < $1.key })")
            // Still serving.
            let after = try await fived.stdio("cat", Array("after".utf8))
            #expect(after.stdoutText == "after", "\(after)")
            let logged = await fived.waitForLog { $0.message == "channel closed" && $0["service"] == "sleeper" }
            #expect(logged != nil, "no channel closed line for the killed clients:\n\(fived.logText)")
        }
    }
}

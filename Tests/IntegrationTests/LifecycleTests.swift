#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Signals: SIGHUP reloads without dropping live channels; SIGTERM and SIGINT stop with 0.
@Suite("Lifecycle", .timeLimit(.minutes(2)))
struct LifecycleTests {
    @Test("SIGHUP: an added service works, a removed one is gone, a channel opened before keeps working")
    func reload() async throws {
        let environment = try await TestEnvironment.make()
        let before = FivedOptions(services: [.exec("echo", "/bin/cat"), .exec("gone", "/bin/cat")])
        try await environment.withFived(before) { fived in
            let live = try fived.spawnSSH(["-W", "echo:1"], stdin: .pipe, name: "ssh-live")
            defer { live.signal(SIGKILL) }
            try await live.writeStdin(Array("before\n".utf8))
            let echoed = await eventually { live.stdout.count >= 7 }
            #expect(echoed, "the live channel did not echo: \(live.stderr)")

            var after = FivedOptions(services: [.exec("echo", "/bin/cat"), .exec("upper", "/usr/bin/tr", "a-z", "A-Z")])
            after.hostKey = fived.options.hostKey
            try fived.directory.write("fived.toml", environment.configText(after))
            fived.process.signal(SIGHUP)

            var upper: ProcessResult?
            let reloaded = try await eventually(timeout: .seconds(10)) {
                upper = try await fived.stdio("upper", Array("hello\n".utf8))
                return upper?.exitStatus == 0
            }
            #expect(reloaded, "the new service never opened: \(upper.map { "\($0)" } ?? "-")\n\(fived.logText)")
            #expect(upper?.stdoutText == "HELLO\n")
            let gone = try await fived.stdio("gone", Array("x".utf8))
            #expect(gone.exitStatus == 255 && openFailureLine(gone) != nil, "a removed service still opens: \(gone)")

            try await live.writeStdin(Array("after\n".utf8))
            live.closeStdin()
            let ended = await live.wait(timeout: .seconds(15))
            #expect(ended == .exited(0), "the pre-reload channel: \(live.stderr)")
            #expect(String(decoding: live.stdout, as: UTF8.self) == "before\nafter\n")
            #expect(fived.process.isRunning)
        }
    }

    @Test("SIGTERM with a live channel: fived closes it and exits 0")
    func terminateWithLiveChannel() async throws {
        try await TestEnvironment.withFived(FivedOptions()) { fived in
            let live = try fived.spawnSSH(["-W", "echo:1"], stdin: .pipe, name: "ssh-live")
            defer { live.signal(SIGKILL) }
            try await live.writeStdin(Array("ping\n".utf8))
            #expect(await eventually { live.stdout.count >= 5 })
            let stopped = await fived.stop(signal: SIGTERM)
            #expect(stopped == .exited(0), "\(fived.logText)")
            let clientEnded = await live.wait(timeout: .seconds(10))
            #expect(clientEnded != nil, "ssh still connected after fived exited")
            #expect(fived.descendants().isEmpty)
        }
    }

    @Test("SIGINT: exit 0 and the port is closed")
    func interrupt() async throws {
        try await TestEnvironment.withFived(FivedOptions()) { fived in
            let working = try await fived.stdio("echo", Array("x".utf8))
            #expect(working.stdoutText == "x")
            let stopped = await fived.stop(signal: SIGINT)
            #expect(stopped == .exited(0), "\(fived.logText)")
            let port = fived.port
            let refused = try await onThread { () -> Bool in
                do {
                    let fd = try Sockets.connectTCP(port: port)
                    close(fd)
                    return false
                } catch {
                    return true
                }
            }
            #expect(refused, "port \(port) still accepts after SIGINT")
        }
    }
}

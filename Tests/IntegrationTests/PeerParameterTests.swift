#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A raw SSH client (paramiko's Transport and Message API, Peers/hostile_peer.py)
/// choosing what a well-behaved client never would: no peer-chosen parameter may
/// spin fived or grow it, and nothing a peer sends after its own EOF or CLOSE
/// reaches a service; such a peer is disconnected and logged.
@Suite("Peer-chosen parameters", .timeLimit(.minutes(2)))
struct PeerParameterTests {
    func run(_ fived: Fived, _ scenario: String, _ argument: String? = nil) async throws -> String {
        let result = try await Peers.run(
            "hostile_peer.py", [String(fived.port), fived.environment.key.privatePath, fived.environment.user, scenario] + (argument.map { [$0] } ?? []),
            in: fived.directory)
        return try Peers.result(of: result)
    }

    /// fived's user + system CPU time so far, in seconds (/proc/PID/stat fields 14 and 15).
    static func cpuSeconds(_ pid: pid_t) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func rssKiB(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test("a maximum packet below 256 (1, 9, 10, 255) is refused and logged, 0 disconnects; fived does not spin; 256 works")
    func tinyMaximumPackets() async throws {
        let environment = try await TestEnvironment.make()
        try await environment.withFived { fived in
            let before = Self.cpuSeconds(fived.pid)
            // Debian's libssh drops an open with maximum packet 0 unanswered; fived drops the peer.
            #expect(try await run(fived, "tiny-packet", "0") == "disconnected")
            let dropped = await fived.waitForLog { $0.message == "protocol violation" && ($0["reason"] ?? "").contains("Invalid maximum packet size 0") }
            #expect(dropped != nil, "\(fived.logText)")
            for size in [1, 9, 10, 255] {
                #expect(try await run(fived, "tiny-packet", String(size)) == "refused 1", "max packet \(size)")
                let logged = await fived.waitForLog {
                    $0.message == "channel refused" && ($0["reason"] ?? "").contains("maximum packet size \(size) is below 256")
                }
                #expect(logged != nil, "max packet \(size)")
            }
            #expect(try await run(fived, "tiny-packet", "256") == "opened b'hello'")
            // Wait a little for any spinning to show, then count fived's CPU.
            try await Task.sleep(for: .seconds(2))
            let used = Self.cpuSeconds(fived.pid) - before
            #expect(used < 1.0, "fived used \(used) CPU seconds")
            // Everyone else is still served.
            let echoed = try await fived.stdio("echo", Array("after".utf8))
            #expect(echoed.stdoutText == "after")
        }
    }

    @Test("a 2^32-1 window and window adjusts that overflow do not grow fived beyond its per-channel bound")
    func hugeWindowsAndOverflowingAdjusts() async throws {
        let options = FivedOptions(services: [.exec("echo", "/bin/cat"), .exec("yes", "/usr/bin/yes")])
        try await TestEnvironment.withFived(options) { fived in
            let before = Self.rssKiB(fived.pid)
            let read = try await run(fived, "huge-window", String(64 << 20))
            #expect(read == "read all")
            let echoed = try await run(fived, "window-overflow")
            #expect(echoed == "echoed b'still here'")
            let grown = Self.rssKiB(fived.pid) - before
            // One channel holds at most a 256 KiB buffer each way and libssh's
            // output for one pump (512 KiB); allow heap slack, far below 64 MiB.
            #expect(grown < 8 * 1024, "fived grew by \(grown) KiB")
        }
    }

    @Test(
        "data, EOF or a request after the peer's own EOF or CLOSE never reach the service; the peer is disconnected",
        arguments: ["data-after-close", "data-after-eof", "eof-after-close", "request-after-close", "second-close"])
    func lateMessagesAreViolations(_ scenario: String) async throws {
        // The sink keeps its end open after the EOF fived passes on: the channel
        // stays up until the violation, however the peer's packets are spread
        // over fived's reads (a sink that closed let fived finish the channel
        // first on a loaded machine, and the late data found no channel).
        let sink = try RecordingServer(keepOpen: true)
        defer { sink.stop() }
        let options = FivedOptions(services: [.exec("echo", "/bin/cat"), .connect("sink", "127.0.0.1:\(sink.port)")])
        try await TestEnvironment.withFived(options) { fived in
            let outcome = try await run(fived, scenario)
            #expect(outcome == "disconnected")
            let logged = await fived.waitForLog { $0.message == "protocol violation" }
            #expect(logged != nil, "\(fived.logText)")
            let delivered = await eventually { sink.recordings.count == 1 }
            #expect(delivered)
            #expect(sink.recordings.first.map { String(decoding: $0, as: UTF8.self) } == "before")
            // Only that connection was dropped.
            let echoed = try await fived.stdio("echo", Array("others".utf8))
            #expect(echoed.stdoutText == "others")
        }
    }
}

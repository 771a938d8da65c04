#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A slow side slows its own channel only: fived's memory stays bounded by the SSH
/// window when a backend stops reading while the client keeps sending, and when a
/// client stops reading while the backend keeps writing.
@Suite("Backpressure", .timeLimit(.minutes(2)))
struct BackpressureTests {
    static let options = FivedOptions(services: [
        .exec("stall", "/bin/sleep", "30"),
        .exec("flood", "/usr/bin/head", "-c", "1073741824", "/dev/zero"),
        .exec("echo", "/bin/cat"),
    ])

    /// Resident memory of fived now, in KiB.
    static func residentKiB(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    static func shellQuoted(_ words: [String]) -> String {
        words.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    }

    /// Runs `pipeline` (with SSH standing for the ssh command line) for `seconds`,
    /// sampling fived's memory; returns the growth over the baseline in KiB.
    func growth(_ fived: Fived, _ pipeline: String, sshOptions: [String], command: [String] = [], seconds: Double) async throws -> (
        growth: Int, sawTraffic: Bool
    ) {
        let ssh = Self.shellQuoted([try Tools.path("ssh")] + fived.sshArguments(sshOptions, command: command, key: fived.environment.key, user: nil))
        let warm = try await fived.stdio("echo", randomBytes(1 << 20))
        #expect(warm.exitStatus == 0, "\(warm)")
        try await Task.sleep(for: .milliseconds(300))
        let baseline = Self.residentKiB(fived.pid)
        let script = pipeline.replacingOccurrences(of: "SSH", with: ssh)
        let child = try ChildProcess.spawn(
            "/bin/sh", ["-c", script], environment: Tools.environment(home: fived.directory.path),
            outputPrefix: fived.directory.file("pressure-\(UInt32.random(in: 0...UInt32.max))"))
        defer { child.signal(SIGKILL) }
        var peak = baseline
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            peak = max(peak, Self.residentKiB(fived.pid))
            try await Task.sleep(for: .milliseconds(100))
        }
        let traffic = fived.logLines.contains { $0.message == "authenticated" }
        await child.killGroup()
        return (peak - baseline, traffic)
    }

    @Test("a backend that stops reading: the client is held back by the window, memory stays bounded")
    func backendStalls() async throws {
        try await TestEnvironment.withFived(Self.options) { fived in
            // 1 GiB offered to a service that never reads its stdin.
            let result = try await growth(fived, "head -c 1073741824 /dev/zero | SSH", sshOptions: ["-W", "stall:1"], seconds: 4)
            #expect(result.sawTraffic)
            // The SSH window (libssh: 1.28 MB, plus what it buffers) and fived's 64 KiB chunks bound it.
            #expect(result.growth < 32 * 1024, "fived grew by \(result.growth) KiB while a backend stalled")
            let after = try await fived.stdio("echo", Array("still serving".utf8))
            #expect(after.stdoutText == "still serving", "\(after)")
        }
    }

    @Test("a client that stops reading: fived stops reading the backend, memory stays bounded")
    func clientStalls() async throws {
        try await TestEnvironment.withFived(Self.options) { fived in
            // ssh's stdout is a pipe nobody reads: ssh stops reading its socket.
            let result = try await growth(fived, "SSH | sleep 30", sshOptions: [], command: ["flood"], seconds: 4)
            #expect(result.sawTraffic)
            #expect(result.growth < 32 * 1024, "fived grew by \(result.growth) KiB while a client stalled")
            let after = try await fived.stdio("echo", Array("still serving".utf8))
            #expect(after.stdoutText == "still serving", "\(after)")
        }
    }
}

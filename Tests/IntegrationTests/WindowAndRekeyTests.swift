#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

private let plinkMissing = MatrixClient.plink.missing

extension Clients {
    /// Issue 14 point 5, which must stay true: a client's huge window does not make
    /// fived buffer what the client does not read, and rekeying under load loses nothing.
    @Suite("Windows and rekeying", .timeLimit(.minutes(3)))
    struct WindowAndRekey {
        /// What one stalled connection may legitimately add to fived's resident memory:
        /// libssh's input and output buffers (a few packets of at most 256 KiB), the
        /// relay's 64 KiB chunks, and the first pages of a glibc arena. The flood is
        /// 64 MiB: had fived read past what the client takes, it would hold most of it.
        static let slackKiB = 8 * 1024
        static let flood = 64 << 20

        @Test(
            "plink -nc (a 2 GiB window) downloading 64 MiB with its reader stalled 6 s: fived's RSS grows by about 0",
            .enabled(if: plinkMissing == nil, "\(plinkMissing ?? "")"))
        func hugeWindowStalledReader() async throws {
            let environment = try await TestEnvironment.make()
            let options = FivedOptions(services: [
                .exec("flood", "/usr/bin/head", "-c", "\(Self.flood)", "/dev/zero"),
                .exec("echo", "/bin/cat"),
            ])
            try await environment.withLowPriorityFived(options) { fived in
                let plink = try await PlinkClient(fived: fived)
                // A first connection and channel, so what any connection costs once is in the baseline.
                let warm = try await plink.run(.directTCPIP, "echo", input: try fived.directory.write("warm", randomBytes(1 << 20)), timeout: .seconds(30))
                try #require(warm.clientSucceeded && warm.stdout.count == 1 << 20, "\(warm)")
                _ = await fived.waitForLog { $0.message == "channel closed" && $0["service"] == "echo" }
                let baseline = BackpressureTests.residentKiB(fived.pid)

                // plink's stdout is a pipe whose reader waits for the test's word on a FIFO.
                let fifo = fived.directory.file("go.fifo")
                try #require(mkfifo(fifo, 0o600) == 0, "mkfifo: \(errnoText())")
                let command = BackpressureTests.shellQuoted(
                    ["/usr/bin/plink"] + plink.arguments(["-nc", "flood:1"]) + ["127.0.0.1"])
                let pipeline = try LowPriority.spawn(
                    "/bin/sh", ["-c", "\(command) </dev/null | { read -r _ < '\(fifo)'; exec wc -c; }"],
                    environment: Tools.environment(home: fived.directory.path), outputPrefix: fived.directory.file("stalled"))
                defer { pipeline.signal(SIGKILL) }

                // The service writes until the stalled reader holds it back: its output stops growing.
                @Sendable func written() -> Int {
                    for pid in fived.descendants() {
                        guard let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8), comm.hasPrefix("head"),
                            let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8),
                            let line = io.split(separator: "\n").first(where: { $0.hasPrefix("wchar:") })
                        else { continue }
                        return Int(line.dropFirst("wchar:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                    return 0
                }
                let started = await eventually(timeout: .seconds(20)) { written() > 0 }
                try #require(started, "the flood did not start: \(pipeline.stderr)\n\(fived.logText)")

                // The stall: about 6 s, sampling fived's memory and the service's
                // progress every 100 ms on a thread of its own (on a cooperative
                // thread, a loaded test runner took 7 samples in the 6 s).
                let (peak, samples) = try await onThread { [pid = fived.pid] () -> (Int, [(at: ContinuousClock.Instant, bytes: Int)]) in
                    var peak = baseline
                    var samples: [(at: ContinuousClock.Instant, bytes: Int)] = []
                    let deadline = ContinuousClock.now + .seconds(6)
                    while ContinuousClock.now < deadline {
                        peak = max(peak, BackpressureTests.residentKiB(pid))
                        samples.append((ContinuousClock.now, written()))
                        usleep(100_000)
                    }
                    return (peak, samples)
                }
                let heldAt = samples.last?.bytes ?? 0
                // Held back: the last second of the stall moved nothing, well short of the whole flood.
                let lastSecond = samples.filter { $0.at >= samples.last!.at - .seconds(1) }.map(\.bytes)
                #expect(
                    lastSecond.count >= 3 && lastSecond.allSatisfy { $0 == heldAt } && heldAt < Self.flood,
                    "the service was not held back by the stalled reader: wrote \(lastSecond) of \(Self.flood) in the last second")

                try await onThread {
                    let fd = open(fifo, O_WRONLY)
                    guard fd >= 0 else { throw HarnessError("open \(fifo): \(errnoText())") }
                    defer { close(fd) }
                    try Sockets.writeAll(fd, Array("go\n".utf8))
                }
                let ended = await pipeline.wait(timeout: .seconds(60))
                let counted = String(decoding: pipeline.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(
                    ended == .exited(0) && counted == "\(Self.flood)",
                    "after the stall the reader got \(counted) of \(Self.flood) bytes (\(ended.map { "\($0)" } ?? "still running")): \(pipeline.stderr)")
                let growth = peak - baseline
                print("plink -nc, reader stalled 6 s: fived RSS \(baseline) KiB, peak \(peak) KiB (+\(growth) KiB); the service was held at \(heldAt) bytes")
                #expect(growth < Self.slackKiB, "fived grew by \(growth) KiB while plink's reader stalled (baseline \(baseline) KiB)")
            }
        }

        @Test("ssh -o RekeyLimit=256K: five concurrent channels of 8 MiB each way through echo keep every hash across a hundred rekeys")
        func rekeyUnderLoad() async throws {
            let environment = try await TestEnvironment.make()
            try await environment.withLowPriorityFived(FivedOptions()) { fived in
                let control = fived.directory.file("rekey.ctl")
                let master = try LowPriority.spawn(
                    try Tools.path("ssh"),
                    fived.sshArguments(
                        ["-v", "-o", "RekeyLimit=256K", "-M", "-S", control, "-N", "-o", "ControlPersist=no"], command: [],
                        key: environment.key, user: nil),
                    environment: Tools.environment(home: fived.directory.path), outputPrefix: fived.directory.file("ssh-rekey-master"))
                defer { master.signal(SIGTERM) }
                let ready = try await eventually(timeout: .seconds(15)) {
                    guard master.isRunning else { return true }
                    return try await fived.ssh(["-S", control, "-O", "check"], timeout: .seconds(5)).exitStatus == 0
                }
                try #require(ready && master.isRunning, "the ControlMaster did not come up: \(master.stderr)")
                let rekeysBefore = master.stderr.components(separatedBy: "SSH2_MSG_NEWKEYS received").count - 1

                let results = try await withThrowingTaskGroup(of: (Int, String, ProcessResult).self) { group in
                    for index in 0..<5 {
                        let data = randomBytes(8 << 20)
                        let want = try await Tools.sha256(data, scratch: fived.directory)
                        let input = try fived.input(data)
                        group.addTask {
                            (
                                index, want,
                                try await LowPriority.run(
                                    try Tools.path("ssh"), fived.sshArguments(["-S", control, "-W", "echo:1"], command: [], key: environment.key, user: nil),
                                    environment: Tools.environment(home: fived.directory.path), stdin: input,
                                    scratch: fived.directory.path, timeout: .seconds(90))
                            )
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                for (index, want, result) in results.sorted(by: { $0.0 < $1.0 }) {
                    #expect(result.exitStatus == 0, "channel \(index): \(result)")
                    let got = try await Tools.sha256(result.stdout, scratch: fived.directory)
                    #expect(got == want, "channel \(index): \(result.stdout.count) of \(8 << 20) bytes came back, hash \(got), want \(want)")
                }
                let rekeys = master.stderr.components(separatedBy: "SSH2_MSG_NEWKEYS received").count - 1 - rekeysBefore
                // 80 MiB crossed the connection (40 each way): at 256 KiB a rekey, well over a hundred.
                #expect(rekeys >= 100, "only \(rekeys) rekeys during the transfers (ssh -v of the master)")
                print("rekey test: \(rekeys) key exchanges during 5 x 8 MiB each way")
                _ = try await fived.ssh(["-S", control, "-O", "exit"], timeout: .seconds(5))
                _ = await master.wait(timeout: .seconds(5))
            }
        }
    }
}

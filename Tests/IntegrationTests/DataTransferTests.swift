import Foundation
import Testing

/// Large transfers each way, checked byte for byte or by hash: no byte lost or reordered,
/// and the client's EOF reaches the backend as stdin EOF.
@Suite("Data transfer", .timeLimit(.minutes(3)))
struct DataTransferTests {
    @Test("5 MiB through sha256sum over -W and over exec: the hash matches")
    func upload() async throws {
        let options = FivedOptions(services: [.exec("sha256", "/usr/bin/sha256sum")])
        try await TestEnvironment.withFived(options) { fived in
            let data = randomBytes(5 * 1024 * 1024)
            let expected = try await Tools.sha256(data, scratch: fived.directory)
            async let stdio = fived.stdio("sha256", data, timeout: .seconds(90))
            async let exec = fived.ssh(command: ["sha256"], stdin: try fived.input(data), timeout: .seconds(90))
            for result in try await [stdio, exec] {
                #expect(result.exitStatus == 0, "\(result)")
                #expect(sha256sumOutput(result) == expected, "\(result)")
            }
        }
    }

    @Test("8 MiB download from an exec backend arrives exactly")
    func download() async throws {
        let environment = try await TestEnvironment.make()
        let served = environment.directory.file("served.bin")
        let options = FivedOptions(services: [
            .exec("download", "/bin/sh", "-c", "head -c 8388608 /dev/urandom | tee \(served)")
        ])
        try await environment.withFived(options) { fived in
            // In turn: both write the same file.
            let stdio = try await fived.ssh(["-W", "download:1"], timeout: .seconds(90))
            let first = try fived.directory.read(served)
            let exec = try await fived.ssh(command: ["download"], timeout: .seconds(90))
            let second = try fived.directory.read(served)
            #expect(first.count == 8_388_608)
            #expect(stdio.exitStatus == 0, "\(stdio)")
            #expect(stdio.stdout.count == first.count)
            expectBytes(stdio.stdout, first, "the -W download differs from what the backend wrote")
            #expect(exec.exitStatus == 0, "\(exec)")
            #expect(exec.stdout.count == second.count)
            expectBytes(exec.stdout, second, "the exec download differs from what the backend wrote")
        }
    }

    @Test("2 MiB each way at once through /bin/cat")
    func bothWays() async throws {
        try await TestEnvironment.withFived(FivedOptions()) { fived in
            let data = randomBytes(2 * 1024 * 1024)
            let result = try await fived.stdio("echo", data, timeout: .seconds(90))
            #expect(result.exitStatus == 0, "\(result)")
            #expect(result.stdout.count == data.count)
            expectBytes(result.stdout, data)
        }
    }

    /// fived holds small amounts of client data back to send them with more
    /// (ServiceChannel.coalesceBytes). That must never delay a quiet channel:
    /// here one channel keeps the connection's socket busy with an endless
    /// upload while another, on the same connection, echoes single bytes.
    @Test("a quiet channel's bytes are not held back behind a bulk upload on the same connection")
    func quietBesideBulk() async throws {
        let options = FivedOptions(services: [
            .exec("echo", "/bin/cat"),
            .exec("sink", "/usr/bin/wc", "-c"),
        ])
        try await TestEnvironment.withFived(options) { fived in
            let (master, control) = try await fived.startControlMaster()
            defer { master.signal(SIGTERM) }

            // What the sink (wc) has read so far: the upload's progress.
            func uploaded() -> Int {
                for pid in fived.descendants() {
                    guard let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
                        comm.hasPrefix("wc"),
                        let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8),
                        let line = io.split(separator: "\n").first(where: { $0.hasPrefix("rchar:") })
                    else { continue }
                    return Int(line.dropFirst("rchar:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
                return 0
            }
            let bulk = try fived.spawnSSH(["-S", control, "-W", "sink:1"], stdin: .file("/dev/zero"), name: "ssh-bulk")
            defer { bulk.signal(SIGTERM) }
            let flowing = await eventually(timeout: .seconds(30)) { uploaded() > 1 << 20 }
            try #require(flowing, "the upload did not start: \(bulk.stderr)")
            let before = uploaded()

            // The quiet channel's stdin and stdout are one end of a socket pair, and
            // the echoes are sent and timed on a thread of their own. Timed from this
            // task (a write, then polling ssh's stdout file), each round also counted
            // the waits for a cooperative thread to resume the task on, which the
            // suites running beside this one can keep busy for seconds: under the
            // full suite those waits reached 2-6 s while ssh had written the echo
            // within 0.4 s.
            let (ours, theirs) = try Sockets.streamPair()
            defer { close(ours) }
            let quiet: ChildProcess
            do {
                defer { close(theirs) }
                quiet = try fived.spawnSSH(["-S", control, "-W", "echo:1"], stdin: .socket(theirs), name: "ssh-quiet")
            }
            defer { quiet.signal(SIGTERM) }
            let bytes = (1...20).map { UInt8(ascii: "a") + UInt8($0 % 26) }
            let times: [Duration]
            do {
                times = try await onThread { try Sockets.echoRoundTrips(ours, bytes, timeout: .seconds(5)) }
            } catch {
                throw HarnessError("\(error); ssh: \(quiet.stderr)")
            }
            // The first includes opening the channel.
            let slowest = times.dropFirst().max() ?? .zero
            let during = uploaded() - before
            #expect(bulk.isRunning, "the upload ended early: \(bulk.stderr)")
            #expect(slowest < .seconds(1), "slowest echo took \(slowest); all: \(times)")
            // The upload kept the connection busy the whole time.
            #expect(during > 1 << 20, "the upload moved only \(during) bytes while the echoes ran")
        }
    }
}

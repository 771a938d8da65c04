#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

private let plinkMissing = MatrixClient.plink.missing

extension Clients {
    /// plink with `-L` runs in PuTTY's non-simple mode: small windows grown by
    /// `winadj@putty.projects.tartarus.org` requests (want-reply) on every channel,
    /// where `-nc` and a plain command use the simple mode and one 2 GiB window.
    /// Issue 14: 20 downloads of 16 MiB each way of using it, 0 failures.
    @Suite(
        "plink -L (PuTTY's non-simple mode)", .timeLimit(.minutes(5)),
        .enabled(if: plinkMissing == nil, "\(plinkMissing ?? "")"))
    struct PuTTYForwarding {
        static let rounds = 20

        /// The shortened account of one failed round: the client's own words.
        static func failure(_ round: Int, _ what: String, _ stderr: String) -> String {
            let fatal = nonEmptyLines(stderr).filter { $0.contains("FATAL") || $0.contains("rror") }
            return "round \(round): \(what)" + (fatal.isEmpty ? "" : "; plink: \(fatal.joined(separator: " / "))")
        }

        @Test("plink -T -L PORT:echo:1 HOST download: 20 downloads of 16 MiB, slowed by -sshlog, all whole")
        func commandBesideForward() async throws {
            let world = try await Matrix.World.make()
            try await world.withFived { fived in
                let plink = try await PlinkClient(fived: fived)
                // Two at a time: the log (a hex dump of every packet, about 80 MB a run)
                // slows each run, which is the point, and the pairs keep the test short.
                let failures = try await withThrowingTaskGroup(of: String?.self) { group in
                    var failures: [String] = []
                    for round in 1...Self.rounds {
                        if round > 2, let done = try await group.next() { failures += [done].compactMap { $0 } }
                        group.addTask {
                            let log = fived.directory.file("plink-\(round).sshlog")
                            defer { unlink(log) }
                            let port = try Sockets.unusedPort()
                            let result = try await LowPriority.run(
                                "/usr/bin/plink",
                                plink.arguments(["-T", "-sshlog", log, "-L", "127.0.0.1:\(port):echo:1"]) + ["127.0.0.1", "download"],
                                environment: Tools.environment(home: fived.directory.path), scratch: fived.directory.path,
                                timeout: .seconds(90))
                            if result.exitStatus != 0 || result.stderr.contains("FATAL ERROR") {
                                return Self.failure(
                                    round, "exit \(result.termination.map { "\($0)" } ?? "(timed out)"), \(result.stdout.count) bytes", result.stderr)
                            }
                            let got = try await Tools.sha256(result.stdout, scratch: fived.directory)
                            return got == world.blobHash ? nil : Self.failure(round, "\(result.stdout.count) bytes, wrong hash", result.stderr)
                        }
                    }
                    for try await done in group { failures += [done].compactMap { $0 } }
                    return failures
                }
                #expect(failures.isEmpty, "\(failures.count) of \(Self.rounds) plink -T -L downloads failed:\n\(failures.joined(separator: "\n"))")
            }
        }

        /// One connection through the forward, read as a user's pipeline would
        /// (`socat -u TCP:127.0.0.1:PORT - | tee FILE | sha256sum`): the hash, the
        /// byte count, and what socat said. A reader behind a pipe is slower than
        /// the forward, so plink has data in hand when the channel ends.
        static func readThroughPipe(port: UInt16, round: Int, in directory: TestDirectory) async throws -> (hash: String, count: Int, reader: String) {
            let copy = directory.file("forwarded-\(round).bin")
            defer { unlink(copy) }
            let result = try await LowPriority.run(
                "/bin/sh", ["-c", "socat -u TCP:127.0.0.1:\(port) - | tee '\(copy)' | sha256sum"],
                environment: Tools.environment(home: directory.path), scratch: directory.path, timeout: .seconds(60))
            var info = stat()
            let count = stat(copy, &info) == 0 ? Int(info.st_size) : -1
            let reader = result.timedOut ? "timed out" : nonEmptyLines(result.stderr).joined(separator: " / ")
            return (sha256sumOutput(result), count, reader)
        }

        @Test("plink -N -L PORT:download:1: 20 connections through the forward, read through a pipe, 16 MiB each, all whole")
        func forwardOnly() async throws {
            let world = try await Matrix.World.make()
            try await world.withFived { fived in
                let plink = try await PlinkClient(fived: fived)
                // plink cannot bind port 0 ("Service lookup failed for source port"), so
                // the port is chosen first; a clash shows as plink's bind failure.
                let port = try Sockets.unusedPort()
                let forward = try LowPriority.spawn(
                    "/usr/bin/plink", plink.arguments(["-N", "-L", "127.0.0.1:\(port):download:1"]) + ["127.0.0.1"],
                    environment: Tools.environment(home: fived.directory.path), outputPrefix: fived.directory.file("plink-N-L"))
                defer { forward.signal(SIGKILL) }
                let listening = await eventually(timeout: .seconds(20)) { !forward.isRunning || isListening(port: port) }
                try #require(listening && forward.isRunning, "plink -N -L did not start listening on \(port): \(forward.stderr)")

                var failures: [String] = []
                var attempted = 0
                for round in 1...Self.rounds {
                    attempted = round
                    let (hash, count, reader) = try await Self.readThroughPipe(port: port, round: round, in: fived.directory)
                    if count != Matrix.size || hash != world.blobHash {
                        failures.append(
                            "round \(round): \(count) of \(Matrix.size) bytes, \(hash == world.blobHash ? "the right" : "a wrong") hash\(reader.isEmpty ? "" : "; reader: \(reader)")"
                        )
                    }
                    if !forward.isRunning {
                        failures.append("round \(round): plink ended (\(forward.poll().map { "\($0)" } ?? "?"))")
                        break
                    }
                }
                let fatal = nonEmptyLines(forward.stderr).filter { $0.contains("FATAL") }
                #expect(
                    failures.isEmpty && fatal.isEmpty,
                    "\(failures.count) of \(Self.rounds) downloads through plink -N -L failed:\n\(failures.joined(separator: "\n"))\nplink: \(fatal.joined(separator: " / "))"
                )
                // Each connection was one direct-tcpip channel of its own.
                let closed = await eventually {
                    fived.channelClosedLines.filter { $0["service"] == "download" && $0["form"] == "direct-tcpip" }.count >= attempted
                }
                #expect(closed, "fived logged fewer than \(attempted) download channels:\n\(fived.logText)")
            }
        }
    }
}

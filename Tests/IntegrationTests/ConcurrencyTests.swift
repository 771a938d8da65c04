#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Many channels over one connection, many connections at once.
@Suite("Concurrency", .timeLimit(.minutes(3)))
struct ConcurrencyTests {
    @Test("50 concurrent -W channels over one ControlMaster connection, each intact")
    func multiplexed() async throws {
        try await TestEnvironment.withFived(FivedOptions()) { fived in
            let (master, control) = try await fived.startControlMaster()
            defer { master.signal(SIGTERM) }

            let results = try await withThrowingTaskGroup(of: (Int, [UInt8], ProcessResult).self) { group in
                for index in 0..<50 {
                    let data = randomBytes(32 * 1024 + index)
                    let input = try fived.input(data)
                    group.addTask {
                        let result = try await fived.ssh(["-S", control, "-W", "echo:1"], stdin: input, timeout: .seconds(90))
                        return (index, data, result)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 50)
            for (index, data, result) in results.sorted(by: { $0.0 < $1.0 }) {
                #expect(result.exitStatus == 0, "client \(index): \(result)")
                expectBytes(result.stdout, data, "client \(index): \(result.stdout.count) of \(data.count) bytes")
            }
            // All 50 went over the one connection: one client address:port in the log.
            _ = await eventually { fived.channelClosedLines.count >= 50 }
            let clients = Set(fived.channelClosedLines.compactMap { $0["client"] })
            #expect(clients.count == 1, "expected one connection, saw \(clients)")
            _ = try await fived.ssh(["-S", control, "-O", "exit"], timeout: .seconds(5))
            _ = await master.wait(timeout: .seconds(5))
        }
    }

    @Test("20 ssh connections at once, each intact")
    func parallelConnections() async throws {
        let options = FivedOptions(
            extraTOML: "[limits]\nmax_startups_per_source = 64\nmax_startups = 256\n")
        try await TestEnvironment.withFived(options) { fived in
            let results = try await withThrowingTaskGroup(of: (Int, [UInt8], ProcessResult).self) { group in
                for index in 0..<20 {
                    let data = randomBytes(64 * 1024 + index)
                    let input = try fived.input(data)
                    group.addTask {
                        (index, data, try await fived.ssh(["-W", "echo:1"], stdin: input, timeout: .seconds(90)))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for (index, data, result) in results.sorted(by: { $0.0 < $1.0 }) {
                #expect(result.exitStatus == 0, "client \(index): \(result)")
                expectBytes(result.stdout, data, "client \(index): \(result.stdout.count) of \(data.count) bytes")
            }
            _ = await eventually { fived.channelClosedLines.count >= 20 }
            #expect(Set(fived.channelClosedLines.compactMap { $0["client"] }).count == 20)
        }
    }
}

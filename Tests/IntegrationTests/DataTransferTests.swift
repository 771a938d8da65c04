import Foundation
import Testing

/// Large transfers each way, checked byte for byte or by hash: no byte lost or reordered,
/// and the client's EOF reaches the backend as stdin EOF.
@Suite("Data transfer", .timeLimit(.minutes(3)))
struct DataTransferTests {
    @Test("5 MiB through sha256sum over -W and over exec: the hash matches")
    func upload() async throws {
        let environment = try await TestEnvironment.make()
        let options = FivedOptions(services: [.exec("sha256", "/usr/bin/sha256sum")])
        try await environment.withFived(options) { fived in
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
        let environment = try await TestEnvironment.make()
        try await environment.withFived(FivedOptions()) { fived in
            let data = randomBytes(2 * 1024 * 1024)
            let result = try await fived.stdio("echo", data, timeout: .seconds(90))
            #expect(result.exitStatus == 0, "\(result)")
            #expect(result.stdout.count == data.count)
            expectBytes(result.stdout, data)
        }
    }
}

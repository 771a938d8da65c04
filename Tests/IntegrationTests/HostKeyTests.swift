#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `--host-key FILE` that does not exist: fived makes an Ed25519 key there.
@Suite("Host key", .timeLimit(.minutes(2)))
struct HostKeyTests {
    @Test("a missing host key is generated with mode 0600, logged by fingerprint, served, and kept")
    func generated() async throws {
        let environment = try await TestEnvironment.make()
        let path = environment.directory.file("generated_host_key")
        var options = FivedOptions()
        options.hostKey = path
        var firstKey: [UInt8] = []
        try await environment.withFived(options) { fived in
            var info = stat()
            #expect(stat(path, &info) == 0, "no key at \(path)")
            #expect(info.st_mode & 0o777 == 0o600, "mode \(String(info.st_mode & 0o777, radix: 8))")
            let fingerprint = try await Tools.fingerprint(ofKeyFile: path, scratch: fived.directory)
            let kind = try await runProcess(
                try Tools.path("ssh-keygen"), ["-l", "-f", path],
                environment: Tools.environment(home: fived.directory.path), scratch: fived.directory.path)
            #expect(kind.stdoutText.contains("(ED25519)"), "\(kind)")
            #expect(fived.logText.contains(fingerprint), "the log does not show \(fingerprint):\n\(fived.logText)")

            // The key ssh was served is that key.
            let connected = try await fived.stdio("echo", Array("k".utf8))
            #expect(connected.exitStatus == 0, "\(connected)")
            let known = try await Tools.fingerprint(ofKeyFile: fived.environment.knownHostsPath, scratch: fived.directory)
            #expect(known == fingerprint)
            firstKey = try fived.directory.read(path)
        }
        // A second start uses the same key rather than making another.
        try await environment.withFived(options) { fived in
            expectBytes(try fived.directory.read(path), firstKey, "the host key file changed")
            let connected = try await fived.stdio("echo", Array("k".utf8))
            #expect(connected.exitStatus == 0, "same host key, known_hosts still matches: \(connected)")
        }
    }
}

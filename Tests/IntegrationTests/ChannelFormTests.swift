#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Every channel form of SPEC.md's table reaches the same service from stock ssh.
@Suite("Channel forms", .timeLimit(.minutes(2)))
struct ChannelFormTests {
    /// echo for everyone, sha256 for everyone, secret for nobody this key is.
    static let services: [TestService] = [
        .exec("echo", "/bin/cat"),
        .exec("sha256", "/usr/bin/sha256sum"),
        .exec("secret", "/bin/cat", allow: ["user:somebody-else"]),
    ]

    @Test("ssh -W NAME:1 (direct-tcpip) carries bytes both ways and half-closes")
    func directTCPIP() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let data = randomBytes(200_000)
            let result = try await fived.stdio("echo", data)
            #expect(result.exitStatus == 0, "\(result)")
            expectBytes(result.stdout, data, "echoed \(result.stdout.count) of \(data.count) bytes")
        }
    }

    @Test("ssh -L PORT:NAME:1 forwards each local connection to the service")
    func localForward() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let localPort = try Sockets.unusedPort()
            let forward = try fived.spawnSSH(
                ["-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:\(localPort):echo:1"], name: "ssh-L")
            defer { forward.signal(SIGTERM) }
            // Two connections in turn over the one forward, each independent.
            for round in 0..<2 {
                let data = randomBytes(100_000 + round)
                let echoed = try await onThread {
                    let deadline = ContinuousClock.now + .seconds(15)
                    while true {
                        do {
                            let fd = try Sockets.connectTCP(port: localPort)
                            defer { close(fd) }
                            return try Sockets.exchange(fd, data)
                        } catch {
                            guard ContinuousClock.now < deadline else { throw error }
                            Thread.sleep(forTimeInterval: 0.05)
                        }
                    }
                }
                expectBytes(echoed, data, "round \(round): got \(echoed.count) of \(data.count) bytes; ssh: \(forward.stderr)")
            }
            forward.signal(SIGTERM)
            _ = await forward.wait(timeout: .seconds(5))
        }
    }

    @Test("ssh -s host NAME (subsystem) carries bytes and exits 0")
    func subsystem() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let data = randomBytes(150_000)
            let result = try await fived.ssh(["-s"], command: ["echo"], stdin: try fived.input(data))
            #expect(result.exitStatus == 0, "\(result)")
            expectBytes(result.stdout, data)
        }
    }

    @Test("ssh host NAME (exec) carries bytes and exits 0")
    func exec() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let data = randomBytes(150_000)
            let result = try await fived.ssh(command: ["echo"], stdin: try fived.input(data))
            #expect(result.exitStatus == 0, "\(result)")
            expectBytes(result.stdout, data)
        }
    }

    @Test("an exec service's stderr and exit status reach a session channel; over -W its stderr is logged")
    func stderrAndExitStatus() async throws {
        let options = FivedOptions(services: [
            .exec("mixed", "/bin/sh", "-c", "echo out; echo 'warn: bad' >&2; exit 3")
        ])
        try await TestEnvironment.withFived(options) { fived in
            let exec = try await fived.ssh(command: ["mixed"])
            #expect(exec.exitStatus == 3, "\(exec)")
            #expect(exec.stdoutText == "out\n", "\(exec)")
            #expect(exec.stderr.contains("warn: bad"), "\(exec)")

            // direct-tcpip has no stderr stream: the line goes to fived's log.
            let stdio = try await fived.stdio("mixed", [])
            #expect(stdio.exitStatus == 0, "\(stdio)")
            #expect(stdio.stdoutText == "out\n", "\(stdio)")
            #expect(!stdio.stderr.contains("warn: bad"), "\(stdio)")
            let logged = await fived.waitForLog { $0.message == "service stderr" && $0["text"] == "warn: bad" }
            #expect(logged != nil, "no 'service stderr' line:\n\(fived.logText)")
        }
    }

    @Test("bare ssh host (shell) prints the help list on stderr and exits 1")
    func shell() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let result = try await fived.ssh()
            #expect(result.exitStatus == 1, "\(result)")
            #expect(result.stdout.isEmpty, "\(result)")
            let names = Set(nonEmptyLines(result.stderr).map { $0.lowercased() })
            #expect(names.isSuperset(of: ["echo", "sha256"]), "\(result)")
            #expect(!names.contains("secret"), "help lists a service the key may not open: \(result)")
        }
    }

    @Test("help over -W and over exec lists exactly what the caller may open")
    func help() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let overStdio = try await fived.stdio("help", [])
            let overExec = try await fived.ssh(command: ["help"])
            #expect(overStdio.exitStatus == 0, "\(overStdio)")
            #expect(overExec.exitStatus == 0, "\(overExec)")
            for result in [overStdio, overExec] {
                let lines = nonEmptyLines(result.stdoutText)
                let names = Set(lines.map { $0.lowercased() })
                #expect(names.isSuperset(of: ["echo", "sha256"]), "\(result)")
                #expect(!names.contains("secret"), "\(result)")
                #expect(names.subtracting(["echo", "sha256", "help"]).isEmpty, "unexpected names: \(result)")
                #expect(lines.count == names.count, "one name per line, no repeats: \(result)")
            }
            #expect(Set(nonEmptyLines(overStdio.stdoutText)) == Set(nonEmptyLines(overExec.stdoutText)))
        }
    }

    @Test("service names are compared without case, in every form")
    func caseInsensitive() async throws {
        try await TestEnvironment.withFived(FivedOptions(services: Self.services)) { fived in
            let data = randomText(5000)
            let stdio = try await fived.stdio("ECHO", data)
            let exec = try await fived.ssh(command: ["Echo"], stdin: try fived.input(data))
            let subsystem = try await fived.ssh(["-s"], command: ["eChO"], stdin: try fived.input(data))
            for result in [stdio, exec, subsystem] {
                #expect(result.exitStatus == 0, "\(result)")
                expectBytes(result.stdout, data, "\(result)")
            }
        }
    }
}

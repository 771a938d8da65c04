import Foundation
import Testing

/// tcp: and unix: backends, with echo servers the test starts itself.
@Suite("Socket backends", .timeLimit(.minutes(2)))
struct SocketBackendTests {
    @Test("a tcp: backend: bytes echo intact over -W and exec; exit-status 0 on a clean close")
    func tcp() async throws {
        let server = try EchoServer.tcp()
        defer { server.stop() }
        let options = FivedOptions(services: [.connect("tcpecho", "127.0.0.1:\(server.port)")])
        try await TestEnvironment.withFived(options) { fived in
            try await Self.expectEchoes(fived, "tcpecho", subsystem: false, server: server)
        }
    }

    @Test("a unix: backend: bytes echo intact over -W and subsystem")
    func unix() async throws {
        let environment = try await TestEnvironment.make()
        let server = try EchoServer.unix(path: environment.directory.file("echo.sock"))
        defer { server.stop() }
        let options = FivedOptions(services: [.connect("unixecho", "unix:\(server.path!)")])
        try await environment.withFived(options) { fived in
            try await Self.expectEchoes(fived, "unixecho", subsystem: true, server: server)
        }
    }

    /// 1 MiB through `service` by -W, then by exec (or the subsystem form), each
    /// echoed intact and ended with exit-status 0; `server` saw both connections.
    static func expectEchoes(
        _ fived: Fived, _ service: String, subsystem: Bool, server: EchoServer, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let data = randomBytes(1024 * 1024)
        let stdio = try await fived.stdio(service, data)
        #expect(stdio.exitStatus == 0, "\(stdio)", sourceLocation: sourceLocation)
        expectBytes(stdio.stdout, data, "-W", sourceLocation: sourceLocation)
        let session = try await fived.ssh(subsystem ? ["-s"] : [], command: [service], stdin: try fived.input(data))
        #expect(session.exitStatus == 0, "a socket backend closed cleanly must give exit-status 0: \(session)", sourceLocation: sourceLocation)
        expectBytes(session.stdout, data, subsystem ? "subsystem" : "exec", sourceLocation: sourceLocation)
        #expect(server.connections == 2, sourceLocation: sourceLocation)
    }

    @Test("services given as --service flags only (tcp:, unix:, exec: split on spaces)")
    func flagsOnly() async throws {
        let environment = try await TestEnvironment.make()
        let tcpServer = try EchoServer.tcp()
        let unixServer = try EchoServer.unix(path: environment.directory.file("u.sock"))
        defer { tcpServer.stop(); unixServer.stop() }
        // As root, an exec service given as a flag has no user to run as: that
        // is refused (the next test), so the exec flag is tried unprivileged only.
        let execFlag: [TestService] = TestDirectory.asRoot ? [] : [.exec("upper", "/usr/bin/tr", "a-z", "A-Z")]
        var options = FivedOptions(
            services: [
                .connect("t", "127.0.0.1:\(tcpServer.port)"),
                .connect("u", "unix:\(unixServer.path!)"),
            ] + execFlag)
        options.useConfigFile = false
        try await environment.withFived(options) { fived in
            let data = Array("hello fived\n".utf8)
            let viaTCP = try await fived.stdio("t", data)
            let viaUnix = try await fived.stdio("u", data)
            expectBytes(viaTCP.stdout, data, "\(viaTCP)")
            expectBytes(viaUnix.stdout, data, "\(viaUnix)")
            if !execFlag.isEmpty {
                let upper = try await fived.stdio("upper", data)
                #expect(upper.stdoutText == "HELLO FIVED\n", "\(upper)")
            }
        }
    }

    @Test("as root, an exec service given as a flag (no user to run it as) is refused in one line naming it")
    func rootRefusesExecFlag() async throws {
        guard TestDirectory.asRoot else { return }
        let environment = try await TestEnvironment.make()
        let hostKey = try await environment.newKey(.ed25519, name: "flag_host_key")
        for extra in [[], ["--check"]] {
            let result = try await environment.runFived(
                [
                    "--listen", "127.0.0.1:0", "--host-key", hostKey.privatePath,
                    "--authorized-keys", environment.authorizedKeysPath, "--service", "upper=exec:/usr/bin/tr a-z A-Z",
                ] + extra)
            #expect(result.exitStatus == 1, "\(result)")
            #expect(nonEmptyLines(result.stderr).count == 1, "\(result)")
            #expect(result.stderr.contains("--service upper") && result.stderr.contains("user"), "\(result)")
        }
    }
}

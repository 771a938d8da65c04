#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

private let systemdAnalyze = program("/usr/bin/systemd-analyze", "/bin/systemd-analyze")
private let groff = program("/usr/bin/groff")

/// examples/fived.service, examples/fived.toml and man/, as docs/install.md installs them.
@Suite("Systemd unit, example config and man pages", .timeLimit(.minutes(2)))
struct SystemdTests {
    @Test(
        "systemd-analyze verify accepts the unit without a warning",
        .enabled(if: systemdAnalyze != nil, "systemd-analyze is not installed (apt-get install systemd)"))
    func verify() async throws {
        let environment = try await TestEnvironment.make()
        // verify checks that ExecStart's program exists: point it at the built one.
        let unit = try Examples.text("fived.service", replacing: [("/usr/local/bin/fived", try Binaries.fived())])
        let path = try environment.directory.write("fived.service", unit)
        let verified = try await runProcess(
            try #require(systemdAnalyze), ["verify", "--man=no", path],
            environment: Tools.environment(home: environment.directory.path), scratch: environment.directory.path)
        #expect(verified.exitStatus == 0, "\(verified)")
        let complaints = verified.stderr.split(separator: "\n").filter { $0.contains("fived.service") }
        #expect(complaints.isEmpty, "\(verified.stderr)")

        // The checker is not a rubber stamp: a typo in the unit is reported.
        let broken = try environment.directory.write("broken.service", unit.replacingOccurrences(of: "ProtectSystem=", with: "ProtectSytem="))
        let flagged = try await runProcess(
            try #require(systemdAnalyze), ["verify", "--man=no", broken],
            environment: Tools.environment(home: environment.directory.path), scratch: environment.directory.path)
        #expect(flagged.stderr.contains("Unknown key 'ProtectSytem'"), "\(flagged)")
    }

    @Test("the unit has the hardening and reload docs/install.md promises")
    func hardening() throws {
        let unit = try Examples.text("fived.service")
        let settings = Set(unit.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init))
        // Started as root for the spawner; the daemon drops it (PrivilegeTests shows it).
        #expect(!settings.contains { $0.hasPrefix("User=") }, "the unit must start fived as root")
        for line in [
            "StateDirectory=fived",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_KILL CAP_CHOWN",
            "NoNewPrivileges=yes", "ProtectSystem=strict",
            "ProtectHome=yes", "PrivateTmp=yes", "ExecReload=/bin/kill -HUP $MAINPID",
            "ExecStart=/usr/local/bin/fived --config /etc/fived/fived.toml",
        ] {
            #expect(settings.contains(line), "examples/fived.service lacks \(line)")
        }
    }

    @Test("examples/fived.toml passes fived --check, with its host key in the state directory")
    func exampleConfig() async throws {
        let environment = try await TestEnvironment.make()
        // --check needs the exec programs to exist; git may be absent here.
        var text = try Examples.text("fived.toml")
        if access("/usr/bin/git", X_OK) != 0 { text = text.replacingOccurrences(of: "/usr/bin/git", with: "/bin/cat") }
        // --check checks the service's user: run git's as daemon (not nobody: that is the example's daemon_user) where there is no git user.
        if getpwnam("git") == nil { text = text.replacingOccurrences(of: #"user = "git""#, with: #"user = "daemon""#) }
        // Not started as root, fived cannot switch users at all.
        if geteuid() != 0 { text = text.replacingOccurrences(of: #"user = "daemon""#, with: "") }
        let path = try environment.directory.write("fived.toml", text)
        let checked = try await environment.runFived(["--config", path, "--check"])
        #expect(checked.exitStatus == 0, "\(checked)")
        #expect(checked.stdoutText.contains("host keys: /var/lib/fived/ssh_host_ed25519_key"), "\(checked)")
        #expect(checked.stdoutText.contains("listen: 0.0.0.0:1, [::]:1"), "\(checked)")
        for name in ["git", "web", "sshd", "status"] {
            #expect(checked.stdoutText.split(separator: "\n").contains { $0.hasPrefix("\(name) ") }, "\(name) missing: \(checked)")
        }
    }

    @Test(
        "the man pages render without a warning, and say what they are for",
        .enabled(if: groff != nil, "groff is not installed (apt-get install groff-base)"),
        arguments: [
            ("fived.8", "fived - the Layer Five Daemon"), ("fived.toml.5", "fived.toml - configuration file of fived"),
            ("fived-connect.1", "fived-connect - reach a service behind fived by name"),
        ])
    func manPage(page: String, name: String) async throws {
        let environment = try await TestEnvironment.make()
        let path = Examples.path("../man/\(page)")
        let rendered = try await runProcess(
            try #require(groff), ["-man", "-Tutf8", "-ww", "-P", "-cbou", path],
            environment: Tools.environment(home: environment.directory.path), scratch: environment.directory.path)
        #expect(rendered.exitStatus == 0 && rendered.stderr.isEmpty, "\(rendered)")
        // Words only: groff justifies lines with extra spaces.
        let text = rendered.stdoutText.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(text.contains(name), "\(rendered.stdoutText.prefix(400))")
        for section in ["SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
            #expect(rendered.stdoutText.contains("\n\(section)\n"), "\(page) has no \(section)")
        }
    }

    @Test("socket activation: the sockets systemd passes (LISTEN_FDS, LISTEN_FDNAMES) are served, `listen` is ignored, one named tcpmux serves TCPMUX")
    func socketActivation() async throws {
        let python = try #require(Peers.python, "/usr/bin/python3 is needed")
        var upper = TestService.exec("upper", "/usr/bin/tr", "a-z", "A-Z")
        upper.extra = ["tcpmux = true"]
        var options = FivedOptions(services: [.exec("echo", "/bin/cat"), upper])
        options.launcher = [python, Peers.path("socket_activation.py"), "ssh:tcpmux"]
        // Under activation `listen` (here 127.0.0.1:0) binds nothing: every
        // listening line names a socket the launcher made.
        try await TestEnvironment.withFived(options) { fived in
            #expect(await fived.waitForLog { $0.message == "socket activation" && $0["sockets"] == "2" } != nil, "\(fived.logText)")
            let listening = fived.logLines.filter { $0.message == "listening" }
            #expect(listening.count == 1, "\(fived.logText)")
            let echo = try await fived.stdio("echo", Array("activated\n".utf8))
            #expect(echo.stdoutText == "activated\n", "\(echo)")
            let tcpmux = try #require(
                fived.logLines.first { $0.message == "listening for tcpmux" }?["address"].flatMap { $0.split(separator: ":").last }.flatMap { UInt16($0) },
                "\(fived.logText)")
            let reply = try await onThread {
                let fd = try Sockets.connectTCP(port: tcpmux)
                defer { close(fd) }
                var timeout = timeval(tv_sec: 15, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                return try Sockets.exchange(fd, Array("upper\r\nsocket\n".utf8))
            }
            #expect(String(decoding: reply, as: UTF8.self) == "+\r\nSOCKET\n")
            // The spawner did not inherit the listeners.
            if let spawner = fived.logLines.first(where: { $0.message == "privileges dropped" })?["spawner"] {
                let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(spawner)/fd")) ?? []
                let sockets = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(spawner)/fd/\($0)") }
                    .filter { $0.hasPrefix("socket:") }
                #expect(sockets.count == 1, "the spawner holds more than its socketpair end: \(sockets)")
            }
        }
    }

}

import Foundation
import Testing

private let systemdAnalyze = program("/usr/bin/systemd-analyze", "/bin/systemd-analyze")
private let groff = program("/usr/bin/groff")

/// examples/fived.service, examples/fived.toml and man/, as docs/install.md installs them.
@Suite("Systemd unit, example config and man pages", .timeLimit(.minutes(2)))
struct SystemdTests {
    @Test("systemd-analyze verify accepts the unit without a warning",
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
        for line in [
            "User=fived", "StateDirectory=fived", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "ProtectSystem=strict",
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
        let path = try environment.directory.write("fived.toml", text)
        let checked = try await environment.runFived(["--config", path, "--check"])
        #expect(checked.exitStatus == 0, "\(checked)")
        #expect(checked.stdoutText.contains("host keys: /var/lib/fived/ssh_host_ed25519_key"), "\(checked)")
        #expect(checked.stdoutText.contains("listen: 0.0.0.0:1, [::]:1"), "\(checked)")
        for name in ["git", "web", "sshd", "status"] {
            #expect(checked.stdoutText.split(separator: "\n").contains { $0.hasPrefix("\(name) ") }, "\(name) missing: \(checked)")
        }
    }

    @Test("the man pages render without a warning, and say what they are for",
          .enabled(if: groff != nil, "groff is not installed (apt-get install groff-base)"),
          arguments: [("fived.8", "fived - the Layer Five Daemon"), ("fived.toml.5", "fived.toml - configuration file of fived"),
                      ("fived-connect.1", "fived-connect - reach a service behind fived by name")])
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
}

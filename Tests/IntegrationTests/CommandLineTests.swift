#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Startup errors: exit 1, one line `fived: ...` naming the file, key or flag, nothing
/// started. `--check` prints the table.
@Suite("Command line", .timeLimit(.minutes(2)))
struct CommandLineTests {
    /// One bad setup and the text its error line must contain.
    struct Case: Sendable, CustomTestStringConvertible {
        let label: String
        /// Config file text (written to fived.toml and passed with --config), or nil.
        let config: String?
        /// Extra flags; `@DIR` becomes the test directory.
        let flags: [String]
        /// What the error line must name; `@DIR` becomes the test directory.
        let mustName: [String]
        var testDescription: String { label }
    }

    static let base = """
        listen = ["127.0.0.1:0"]
        host_keys = ["@DIR/host_key"]
        authorized_keys = ["@DIR/authorized_keys"]

        """

    static let cases: [Case] = [
        Case(label: "unknown flag", config: nil, flags: ["--no-such-flag"], mustName: ["--no-such-flag"]),
        Case(label: "bad TOML", config: base + "[services.echo\nexec = [\"/bin/cat\"]\n", flags: [], mustName: ["@DIR/fived.toml"]),
        Case(label: "unknown top-level key", config: base + "lissten = [\"x\"]\n", flags: [], mustName: ["@DIR/fived.toml", "lissten"]),
        Case(label: "unknown service key", config: base + "[services.echo]\nexce = [\"/bin/cat\"]\n", flags: [], mustName: ["@DIR/fived.toml", "exce"]),
        Case(
            label: "both connect and exec", config: base + "[services.both]\nexec = [\"/bin/cat\"]\nconnect = \"127.0.0.1:7\"\n", flags: [], mustName: ["both"]),
        Case(label: "neither connect nor exec", config: base + "[services.neither]\nallow = [\"user:x\"]\n", flags: [], mustName: ["neither"]),
        Case(label: "bad service name in the file", config: base + "[services.\"bad/name\"]\nexec = [\"/bin/cat\"]\n", flags: [], mustName: ["bad/name"]),
        Case(label: "bad service name in a flag", config: base, flags: ["--service", "bad/name=exec:/bin/cat"], mustName: ["bad/name"]),
        Case(
            label: "missing exec program in the file", config: base + "[services.gone]\nexec = [\"/nonexistent/fived-prog\"]\n", flags: [],
            mustName: ["/nonexistent/fived-prog"]),
        Case(
            label: "missing exec program in a flag", config: base, flags: ["--service", "gone=exec:/nonexistent/fived-prog -x"],
            mustName: ["/nonexistent/fived-prog"]),
        Case(label: "unknown backend kind", config: base, flags: ["--service", "x=ftp:somewhere"], mustName: ["ftp:somewhere"]),
        Case(label: "bad --listen", config: base, flags: ["--listen", "not-an-address"], mustName: ["not-an-address"]),
        Case(label: "missing config file", config: nil, flags: ["--config", "@DIR/absent.toml"], mustName: ["@DIR/absent.toml"]),
        Case(label: "bad log level", config: base, flags: ["--log-level", "chatty"], mustName: ["chatty"]),
    ]

    @Test("a bad setup: exit 1, one line naming the culprit", arguments: cases)
    func badSetup(_ setup: Case) async throws {
        let environment = try await TestEnvironment.make()
        let dir = environment.directory.path
        var arguments = setup.flags.map { $0.replacingOccurrences(of: "@DIR", with: dir) }
        if let config = setup.config {
            let path = try environment.directory.write("fived.toml", config.replacingOccurrences(of: "@DIR", with: dir))
            arguments = ["--config", path] + arguments
        }
        let result = try await environment.runFived(arguments)
        #expect(result.exitStatus == 1, "\(result)")
        let lines = nonEmptyLines(result.stderr)
        #expect(lines.count == 1, "want exactly one line: \(result)")
        #expect(lines.first?.hasPrefix("fived: ") == true, "\(result)")
        for name in setup.mustName.map({ $0.replacingOccurrences(of: "@DIR", with: dir) }) {
            #expect(result.stderr.contains(name), "the error does not name \(name): \(result)")
        }
        #expect(!result.stderr.contains("listening"), "it started: \(result)")
    }

    @Test("a private host key that others can read is refused, naming the file")
    func openHostKey() async throws {
        let environment = try await TestEnvironment.make()
        let key = try await environment.newKey(.ed25519, name: "loose_host_key")
        chmod(key.privatePath, 0o644)
        let result = try await environment.runFived([
            "--listen", "127.0.0.1:0", "--host-key", key.privatePath,
            "--authorized-keys", environment.authorizedKeysPath, "--service", "echo=tcp:127.0.0.1:7",
        ])
        #expect(result.exitStatus == 1, "\(result)")
        #expect(nonEmptyLines(result.stderr).count == 1, "\(result)")
        #expect(result.stderr.hasPrefix("fived: ") && result.stderr.contains(key.privatePath), "\(result)")
    }

    @Test("--check and -t print the service table and exit 0 without starting")
    func check() async throws {
        let environment = try await TestEnvironment.make()
        let options = FivedOptions(services: [
            .exec("echo", "/bin/cat"),
            .connect("web", "127.0.0.1:8080"),
            .connect("sock", "unix:/run/nothing.sock"),
        ])
        try environment.directory.write("fived.toml", environment.configText(options))
        for flag in ["--check", "-t"] {
            let result = try await environment.runFived(["--config", environment.directory.file("fived.toml"), flag])
            #expect(result.exitStatus == 0, "\(flag): \(result)")
            for expected in ["echo", "/bin/cat", "web", "127.0.0.1:8080", "sock", "/run/nothing.sock"] {
                #expect(result.stdoutText.contains(expected), "\(flag): table lacks \(expected): \(result)")
            }
            #expect(!result.stderr.contains("listening address="), "\(flag) started listening: \(result)")
        }
        // And with a bad config, --check fails the same way as a start.
        try environment.directory.write("bad.toml", "listen = [\n")
        let bad = try await environment.runFived(["--config", environment.directory.file("bad.toml"), "--check"])
        #expect(bad.exitStatus == 1, "\(bad)")
        #expect(nonEmptyLines(bad.stderr).count == 1 && bad.stderr.hasPrefix("fived: "), "\(bad)")
    }
}

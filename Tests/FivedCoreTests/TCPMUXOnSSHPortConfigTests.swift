import Foundation
import Testing

@testable import FivedCore

/// `tcpmux_on_ssh_port`: parsed, shown by --check with its notes, and named in errors.
@Suite("tcpmux_on_ssh_port")
struct TCPMUXOnSSHPortConfigTests {
    private func parse(_ toml: String) throws -> Configuration {
        try ConfigurationLoader.parse(toml: toml, file: "f.toml").withDefaults()
    }

    @Test("false by default; true or false as written")
    func values() throws {
        #expect(try parse("").tcpmuxOnSSHPort == false)
        #expect(try parse("tcpmux_on_ssh_port = true\n").tcpmuxOnSSHPort == true)
        #expect(try parse("tcpmux_on_ssh_port = false\n").tcpmuxOnSSHPort == false)
    }

    @Test(
        "a value that is not a boolean: one line naming the file, line and key",
        arguments: [
            ("log_level = \"info\"\ntcpmux_on_ssh_port = \"yes\"\n", "f.toml:2: tcpmux_on_ssh_port: must be true or false, not a string"),
            ("tcpmux_on_ssh_port = 1\n", "f.toml:1: tcpmux_on_ssh_port: must be true or false, not an integer"),
            ("tcpmux_on_ssh_port = [true]\n", "f.toml:1: tcpmux_on_ssh_port: must be true or false, not an array"),
        ])
    func bad(_ toml: String, _ message: String) throws {
        let e = try expectParseError(toml, file: "f.toml", .configInvalidValue, message)
        #expect(!e.message.contains("\n"))
    }

    @Test("a misspelling is an unknown key, named")
    func misspelled() throws {
        let e = try #require(parseError("tcpmux_on_ssh = true\n", file: "f.toml"))
        #expect(e.message.hasPrefix("f.toml:1: unknown key 'tcpmux_on_ssh'"), "\(e.message)")
    }

    @Test("--check says whether the SSH listeners answer TCPMUX")
    func checkLine() throws {
        #expect(ServiceTable.render(try parse("")).contains("\ntcpmux on ssh port: no\n"))
        let text = ServiceTable.render(try parse("tcpmux_on_ssh_port = true\n"))
        #expect(text.contains("\ntcpmux on ssh port: yes (SSH- speaks SSH, a name line TCPMUX, 1 s of silence SSH)\n"), "\(text)")
    }

    @Test("--check notes: nothing offered; names a TCPMUX client could send as SSH-; no 'no tcpmux listener' note")
    func notes() throws {
        let none = ServiceTable.render(try parse("tcpmux_on_ssh_port = true\n[services.echo]\nexec = [\"/bin/cat\"]\n"))
        #expect(none.contains("note: tcpmux_on_ssh_port = true, but no service has tcpmux = true"), "\(none)")

        let offered = ServiceTable.render(
            try parse(
                """
                tcpmux_on_ssh_port = true
                [services.echo]
                exec = ["/bin/cat"]
                tcpmux = true
                [services.SSH-keys]
                exec = ["/bin/cat"]
                tcpmux = true
                [services.ssh-only]
                exec = ["/bin/cat"]
                """))
        #expect(!offered.contains("no tcpmux listener"), "\(offered)")
        #expect(!offered.contains("no service has tcpmux = true"), "\(offered)")
        #expect(
            offered.contains(
                "note: on the SSH port, a TCPMUX request that begins with uppercase 'SSH-' is taken for SSH: clients must name ssh-keys in lowercase"),
            "\(offered)")

        let plain = ServiceTable.render(try parse("[services.echo]\nexec = [\"/bin/cat\"]\ntcpmux = true\n"))
        #expect(plain.contains("note: tcpmux = true on echo, but there is no tcpmux listener"), "\(plain)")
        #expect(!plain.contains("SSH-' is taken"), "\(plain)")
    }

    @Test("a tcpmux listener on the SSH port: the error says what to do, with and without tcpmux_on_ssh_port")
    func sharedAddress() throws {
        let directory = NSTemporaryDirectory() + "fived-oneport-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/fived.toml"
        try "listen = [\"0.0.0.0:1\"]\ntcpmux_on_ssh_port = true\ntcpmux = [\"0.0.0.0:1\"]\n".write(toFile: file, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigurationLoader.load(ConfigurationOverrides(configFile: file))
            Issue.record("accepted a tcpmux listener on the SSH port")
        } catch {
            #expect(
                error.message
                    == "\(file):3: tcpmux: 0.0.0.0:1 would share a port with the SSH listener 0.0.0.0:1: tcpmux_on_ssh_port = true already answers TCPMUX there: remove it from tcpmux",
                "\(error.message)")
        }
        do {
            _ = try ConfigurationLoader.load(ConfigurationOverrides(tcpmux: ["0.0.0.0:1"]))
            Issue.record("accepted a tcpmux listener on the SSH port")
        } catch {
            #expect(
                error.message.hasSuffix("give the TCPMUX listener another port, or set tcpmux_on_ssh_port = true to answer TCPMUX on the SSH port"),
                "\(error.message)")
        }
    }
}

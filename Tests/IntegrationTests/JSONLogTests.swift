#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `log_format = "json"`: every line fived writes is one JSON object whose values are
/// strings, `time`, `level` and `message` first; client-chosen user names with quotes,
/// backslashes, control characters and non-ASCII come through exactly.
@Suite("JSON logs", .timeLimit(.minutes(2)))
struct JSONLogTests {
    /// Debian's python3 with paramiko: stock ssh refuses user names with quotes or
    /// control characters, a raw client sends them.
    static let python = program("/usr/bin/python3")

    static let peer = """
        import sys, paramiko
        port, keyfile, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        transport = paramiko.Transport(("127.0.0.1", port))
        transport.start_client(timeout=15)
        try:
            transport.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(keyfile))
            print("RESULT accepted")
        except paramiko.AuthenticationException:
            print("RESULT refused")
        transport.close()
        """

    @Test("one object per line, stable names, exact user names; python3 -m json.tool reads the log")
    func jsonLines() async throws {
        let environment = try await TestEnvironment.make()
        let stranger = try await environment.newKey(.ed25519, name: "stranger")
        var options = FivedOptions()
        options.extraTOML = "log_format = \"json\""
        let configPath = try environment.directory.write("fived.toml", environment.configText(options))
        let process = try ChildProcess.spawn(
            try Binaries.fived(), ["--config", configPath], environment: Tools.environment(home: environment.directory.path),
            outputPrefix: environment.directory.file("fived"))
        defer { if process.isRunning { process.signal(SIGKILL) } }
        let port = try await Self.waitForListening(process)

        // Stock ssh takes backslashes, spaces, '=' and non-ASCII in a user name.
        let spoken = "back\\slash é✓ x=y"
        let data = Array("hello\n".utf8)
        let ssh = try await runProcess(
            try Tools.path("ssh"),
            [
                "-F", "/dev/null", "-o", "UserKnownHostsFile=\(environment.knownHostsPath)", "-o", "StrictHostKeyChecking=no",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", environment.key.privatePath, "-p", String(port),
                "-l", spoken, "-W", "echo:1", "127.0.0.1",
            ],
            environment: Tools.environment(home: environment.directory.path),
            stdin: .file(try environment.directory.write("input", data)), scratch: environment.directory.path)
        #expect(ssh.exitStatus == 0, "\(ssh)")
        expectBytes(ssh.stdout, data)

        // A raw client sends quotes, control characters and a newline too.
        let hostile = "q\"uote\\back\u{1}ctl\ttab\nnewline é✓"
        if let python = Self.python {
            let script = try environment.directory.write("peer.py", Self.peer)
            let raw = try await runProcess(
                python, [script, String(port), stranger.privatePath, hostile],
                environment: Tools.environment(home: environment.directory.path), scratch: environment.directory.path)
            #expect(raw.stdoutText.contains("RESULT refused"), "\(raw)")
        }

        let lines = try await Self.waitForObjects(process) { objects in
            objects.contains { $0["message"] as? String == "channel closed" }
                && (Self.python == nil || objects.contains { $0["message"] as? String == "authentication failed" })
        }
        process.signal(SIGTERM)
        #expect(await process.wait(timeout: .seconds(10)) == .exited(0))

        let text = process.stderr
        var objects: [[String: Any]] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
            #expect(object.values.allSatisfy { $0 is String }, "a value that is not a string: \(line)")
            for name in ["time", "level", "message"] {
                #expect(object[name] is String, "no \(name): \(line)")
            }
            #expect(line.hasPrefix("{\"time\":\"") && line.contains("\",\"level\":\"") && line.contains("\",\"message\":\""), "\(line)")
            #expect((object["time"] as? String)?.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(line)")
            objects.append(object)
        }
        #expect(objects.count >= lines.count && objects.count > 3, "\(text)")
        #expect(objects.contains { $0["message"] as? String == "listening" && $0["address"] as? String == "127.0.0.1:\(port)" }, "\(text)")

        let closed = try #require(objects.first { $0["message"] as? String == "channel closed" }, "\(text)")
        #expect(closed["user"] as? String == spoken, "\(closed)")
        #expect(closed["service"] as? String == "echo" && closed["form"] as? String == "direct-tcpip", "\(closed)")
        #expect(closed["bytes_in"] as? String == "6" && closed["bytes_out"] as? String == "6", "\(closed)")
        #expect(closed["fingerprint"] as? String == environment.key.fingerprint, "\(closed)")
        // The channel's fields come in the documented order.
        let raw = try #require(text.split(separator: "\n").first { $0.contains("\"channel closed\"") }.map(String.init))
        let order = [
            "time", "level", "message", "user", "fingerprint", "client", "service", "form", "channel", "bytes_in", "bytes_out", "duration_ms", "reason",
        ]
        let positions = order.compactMap { raw.range(of: "\"\($0)\":")?.lowerBound }
        #expect(positions.count == order.count && positions == positions.sorted(), "\(raw)")

        if Self.python != nil {
            let failed = try #require(objects.first { $0["message"] as? String == "authentication failed" }, "\(text)")
            #expect(failed["user"] as? String == hostile, "\(failed)")
            #expect(failed["fingerprint"] as? String == stranger.fingerprint, "\(failed)")
            #expect(failed["files"] as? String == environment.authorizedKeysPath, "\(failed)")
            #expect(failed["reason"] as? String == "key not listed in any authorized_keys file", "\(failed)")
        }

        // And python's own JSON reader takes the log as JSON Lines.
        if let python = Self.python {
            let log = try environment.directory.write("log.jsonl", text)
            let tool = try await runProcess(
                python, ["-m", "json.tool", "--json-lines", log],
                environment: Tools.environment(home: environment.directory.path), scratch: environment.directory.path)
            #expect(tool.exitStatus == 0 && tool.stderr.isEmpty, "\(tool)")
        }
    }

    /// The port of fived's JSON `listening` line; fails at once if fived exits.
    static func waitForListening(_ process: ChildProcess) async throws -> UInt16 {
        var port: UInt16?
        _ = try await waitForObjects(process, timeout: .seconds(20)) { objects in
            for object in objects where object["message"] as? String == "listening" {
                if let address = object["address"] as? String, let colon = address.lastIndex(of: ":") {
                    port = UInt16(address[address.index(after: colon)...])
                }
            }
            return port != nil
        }
        return try #require(port, "no listening line:\n\(process.stderr)")
    }

    /// fived's complete lines so far as JSON objects, once `done` holds for them.
    static func waitForObjects(
        _ process: ChildProcess, timeout: Duration = .seconds(10), _ done: ([[String: Any]]) -> Bool
    ) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let complete = process.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            let objects = complete.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            if done(objects) { return objects }
            if let ended = process.poll() { throw HarnessError("fived ended (\(ended)):\n\(process.stderr)") }
            guard ContinuousClock.now < deadline else { throw HarnessError("waited \(timeout) for fived's log:\n\(process.stderr)") }
            try await Task.sleep(for: .milliseconds(25))
        }
    }
}

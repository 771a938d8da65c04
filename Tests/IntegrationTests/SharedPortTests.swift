#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `tcpmux_on_ssh_port = true`: one port for SSH and TCPMUX. A client whose first
/// bytes are `SSH-` gets SSH, a name line gets the TCPMUX listener's answer, and
/// silence gets the SSH identification string after a second (docs/tcpmux.md).
@Suite("Shared port", .timeLimit(.minutes(3)))
struct SharedPortTests {
    static let raw = ClientPrograms.path("tcpmux_client.py")

    /// `upper` and `sha256` offered over TCPMUX, `echo` over SSH only; debug logs,
    /// for the lines that say how each connection was judged.
    static func options(extraTOML: String = "[limits]\nmax_startups_per_source = 64") -> FivedOptions {
        var upper = TestService.exec("upper", "/usr/bin/tr", "a-z", "A-Z")
        upper.extra = ["tcpmux = true"]
        var sha256 = TestService.exec("sha256", "/usr/bin/sha256sum")
        sha256.extra = ["tcpmux = true"]
        var options = FivedOptions(
            services: [upper, sha256, .exec("echo", "/bin/cat")], extraTOML: "tcpmux_on_ssh_port = true\n" + extraTOML)
        options.logLevel = "debug"
        return options
    }

    /// The raw TCPMUX client (a Python socket): `request` and the file `input`, then
    /// a write shutdown; everything the server sent until it closed.
    static func tcpmux(_ fived: Fived, port: UInt16? = nil, _ request: String, input: String? = nil) async throws -> ProcessResult {
        var arguments = [raw, "--port", String(port ?? fived.port), "--request", request]
        if let input { arguments += ["--input", input] }
        return try await runProcess(
            PythonClient.python, arguments, environment: Tools.environment(home: fived.directory.path),
            scratch: fived.directory.path, timeout: .seconds(60))
    }

    /// The raw client sending nothing: the server's first line, and how long it took.
    static func silent(_ fived: Fived) async throws -> (line: String, seconds: Double, result: ProcessResult) {
        let result = try await runProcess(
            PythonClient.python, [raw, "--port", String(fived.port), "--silent"],
            environment: Tools.environment(home: fived.directory.path), scratch: fived.directory.path,
            timeout: .seconds(30))
        let elapsed = result.stderr.split(whereSeparator: \.isNewline).last { $0.hasPrefix("elapsed=") }
        return (result.stdoutText, elapsed.flatMap { Double($0.dropFirst("elapsed=".count)) } ?? -1, result)
    }

    /// `ssh-keyscan`, which sends nothing until it has the server's identification
    /// string: the fingerprint of the Ed25519 host key it read.
    static func keyscan(_ fived: Fived) async throws -> (fingerprint: String?, result: ProcessResult) {
        let result = try await runProcess(
            try Tools.path("ssh-keyscan"), ["-T", "20", "-t", "ed25519", "-p", String(fived.port), "127.0.0.1"],
            environment: Tools.environment(home: fived.directory.path), scratch: fived.directory.path,
            timeout: .seconds(30))
        guard result.exitStatus == 0, !result.stdout.isEmpty else { return (nil, result) }
        let file = try fived.directory.write("keyscan-\(UInt32.random(in: 0...UInt32.max))", result.stdout)
        return (try? await Tools.fingerprint(ofKeyFile: file, scratch: fived.directory), result)
    }

    static var pythonMissing: Bool { access(PythonClient.python, X_OK) != 0 }

    /// What one concurrent run did, and what it should have done.
    struct Outcome: Sendable {
        let who: String
        let ok: Bool
        let detail: String
    }

    @Test(
        "stock ssh, plink, paramiko (every form), dbclient, raw TCPMUX, a silent client and ssh-keyscan, all at once on one port",
        .enabled(if: !pythonMissing, "the raw TCPMUX client is Python: apt-get install python3"))
    func everyoneAtOnce() async throws {
        let environment = try await TestEnvironment.make()
        let blobBytes = try environment.directory.randomFile("blob.bin", count: 1 << 20)
        let blob = environment.directory.file("blob.bin")
        let hash = try await Tools.sha256(blobBytes, scratch: environment.directory)
        let clients = [MatrixClient.openssh, .plink, .paramiko, .dbclient].filter { $0.missing == nil }
        let skipped = [MatrixClient.openssh, .plink, .paramiko, .dbclient].compactMap { client in client.missing.map { "\(client): \($0)" } }
        let tcpmuxRuns = 6
        try await environment.withFived(Self.options()) { fived in
            var drivers: [(MatrixClient, any ChannelClient)] = []
            for client in clients { drivers.append((client, try await client.client(for: fived))) }
            let outcomes = try await withThrowingTaskGroup(of: Outcome.self) { group in
                for (client, driver) in drivers {
                    for form in ClientForm.allCases {
                        group.addTask {
                            let run = try await driver.run(form, "sha256", input: blob, timeout: .seconds(90))
                            let ok = run.clientSucceeded && sha256sumOutput(run.process) == hash
                            return Outcome(who: "\(client) \(form)", ok: ok, detail: "\(run)")
                        }
                    }
                }
                for i in 0..<tcpmuxRuns {
                    group.addTask {
                        let result = try await Self.tcpmux(fived, "sha256\r\n", input: blob)
                        let ok = result.exitStatus == 0 && result.stdoutText == "+\r\n\(hash)  -\n"
                        return Outcome(who: "tcpmux \(i)", ok: ok, detail: "\(result)")
                    }
                }
                group.addTask {
                    let (line, seconds, result) = try await Self.silent(fived)
                    let ok = line.hasPrefix("SSH-2.0-") && line.hasSuffix("\r\n") && seconds >= 0.9
                    return Outcome(who: "silent client", ok: ok, detail: "after \(seconds) s: \(result)")
                }
                group.addTask {
                    let (fingerprint, result) = try await Self.keyscan(fived)
                    let ok = fingerprint != nil && fingerprint == fived.hostKeyFingerprint
                    return Outcome(who: "ssh-keyscan", ok: ok, detail: "\(fingerprint ?? "no key") vs \(fived.hostKeyFingerprint ?? "-"): \(result)")
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for outcome in outcomes where !outcome.ok {
                Issue.record("\(outcome.who) failed:\n\(outcome.detail)")
            }
            #expect(outcomes.count == clients.count * ClientForm.allCases.count + tcpmuxRuns + 2)

            // How fived judged them: every TCPMUX client by its name line, the two
            // silent ones by their silence. (An SSH client slowed down by more than a
            // second between its connect and its first bytes is judged by its
            // silence too, and rightly so: it is not counted exactly.)
            let lines = fived.logLines
            let judgedTCPMUX = lines.filter { $0.message == "connection speaks tcpmux" }.count
            let judgedSilent = lines.filter { $0.message == "connection sent nothing: answering SSH" }.count
            #expect(judgedTCPMUX == tcpmuxRuns, "\(judgedTCPMUX) connections judged TCPMUX, want \(tcpmuxRuns)")
            #expect(judgedSilent >= 2, "\(judgedSilent) connections judged silent, want at least 2 (the silent client and ssh-keyscan)")
            let served = lines.filter { $0.message == "tcpmux closed" && $0["service"] == "sha256" && $0["bytes_in"] == "\(1 << 20)" }
            #expect(served.count == tcpmuxRuns, "\(served.count) TCPMUX sha256 runs logged with 1 MiB in")
            let channels = lines.filter { $0.message == "channel closed" && $0["service"] == "sha256" }
            #expect(channels.count == clients.count * ClientForm.allCases.count)
        }
        if !skipped.isEmpty { print("shared port: not installed, so not in the run: \(skipped.joined(separator: "; "))") }
    }

    @Test(
        "a client that sends nothing gets the SSH identification string after about a second, and SSH works after it",
        .enabled(if: !pythonMissing, "the raw client is Python: apt-get install python3"))
    func silentClientGetsTheBanner() async throws {
        try await TestEnvironment.withFived(Self.options()) { fived in
            let (line, seconds, result) = try await Self.silent(fived)
            #expect(line.hasPrefix("SSH-2.0-") && line.hasSuffix("\r\n"), "\(result)")
            // Not before the silence limit; the upper bound only catches "never" on a loaded machine.
            #expect(seconds >= 0.9 && seconds < 15, "the banner came after \(seconds) s, want about 1 s")
            let (fingerprint, scan) = try await Self.keyscan(fived)
            #expect(fingerprint != nil && fingerprint == fived.hostKeyFingerprint, "\(scan)")
            // The first bytes were only looked at: an SSH client after all this still works.
            let echoed = try await fived.stdio("echo", Array("still ssh\n".utf8))
            #expect(echoed.exitStatus == 0 && echoed.stdoutText == "still ssh\n", "\(echoed)")
        }
    }

    @Test(
        "TCPMUX on the SSH port answers exactly as the plain listener: refusals, HELP, invalid and long names, data after the name",
        .enabled(if: !pythonMissing, "the raw TCPMUX client is Python: apt-get install python3"))
    func sameAnswersAsThePlainListener() async throws {
        var options = Self.options()
        options.tcpmux = true
        try await TestEnvironment.withFived(options) { fived in
            let plain = try #require(fived.tcpmuxPort)
            let requests = [
                "echo\\r\\nnot for tcpmux", "ECHO\\r\\n", "nothing-here\\r\\n", "HELP\\r\\n", "help\\n", "upper\\r\\nhello, one port\\n",
                "Upper\\nbare lf\\n", "bad name\\r\\n", "\\r\\n", String(repeating: "a", count: 100) + "\\r\\n", "ssh-lower\\r\\n",
            ]
            for request in requests {
                let shared = try await Self.tcpmux(fived, request)
                let reference = try await Self.tcpmux(fived, port: plain, request)
                #expect(shared.exitStatus == 0 && reference.exitStatus == 0, "\(shared)\n\(reference)")
                #expect(
                    shared.stdoutText == reference.stdoutText,
                    "\(request): shared port \(shared.stdoutText.debugDescription), plain listener \(reference.stdoutText.debugDescription)")
            }
            let refused = try await Self.tcpmux(fived, "echo\\r\\n")
            #expect(refused.stdoutText == "-service not available\r\n", "\(refused)")
            let help = try await Self.tcpmux(fived, "HELP\\r\\n")
            #expect(help.stdoutText == "sha256\r\nupper\r\n", "\(help)")
            let upper = try await Self.tcpmux(fived, "upper\\r\\nhello, one port\\n")
            #expect(upper.stdoutText == "+\r\nHELLO, ONE PORT\n", "\(upper)")
            // And SSH on the same port still refuses what it refuses and serves what it serves.
            let echo = try await fived.stdio("echo", Array("over ssh\n".utf8))
            #expect(echo.exitStatus == 0 && echo.stdoutText == "over ssh\n", "\(echo)")
        }
    }

    @Test("connections not yet judged count against max_startups_per_source like SSH's before authentication; another address still gets in")
    func countedAsStartups() async throws {
        // A long login grace: on a starved machine the steps below have taken more than
        // the default 30 s, and the grace time then freed the held slots by itself.
        let limits = "[limits]\nmax_startups_per_source = 2\nlogin_grace_seconds = 150"
        try await TestEnvironment.withFived(Self.options(extraTOML: limits)) { fived in
            let port = fived.port
            // Two silent connections from 127.0.0.1: judged SSH after a second, and
            // holding both of its startup slots until they authenticate or go.
            var held = [
                try await onThread { try Sockets.connectTCP(port: port, from: "127.0.0.1") },
                try await onThread { try Sockets.connectTCP(port: port, from: "127.0.0.1") },
            ]
            defer { held.forEach { close($0) } }
            let bothSSH = await eventually(timeout: .seconds(10)) {
                fived.logLines.filter { $0.message == "connection sent nothing: answering SSH" }.count == 2
            }
            #expect(bothSSH, "the two silent connections were not answered as SSH")

            // A third from 127.0.0.1 waits, unread, for a slot: its TCPMUX request gets no answer yet.
            let third = Task {
                try await onThread { () -> String in
                    let fd = try Sockets.connectTCP(port: port, from: "127.0.0.1")
                    defer { close(fd) }
                    var timeout = timeval(tv_sec: 90, tv_usec: 0)  // it waits for a slot first
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    return String(decoding: try Sockets.exchange(fd, Array("upper\r\nthird\n".utf8)), as: UTF8.self)
                }
            }
            // Another address is counted apart, and served at once.
            let other = try await onThread { () -> String in
                let fd = try Sockets.connectTCP(port: port, from: "127.0.0.2")
                defer { close(fd) }
                var timeout = timeval(tv_sec: 10, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                return String(decoding: try Sockets.exchange(fd, Array("upper\r\nfrom two\n".utf8)), as: UTF8.self)
            }
            #expect(other == "+\r\nFROM TWO\n", "\(other.debugDescription)")
            try await Task.sleep(for: .seconds(1.5))
            let judged = fived.logLines.filter { $0.message == "connection speaks tcpmux" }
            #expect(
                judged.count == 1 && judged.first?["client"]?.hasPrefix("127.0.0.2:") == true,
                "127.0.0.1's third connection was judged while both its slots were held: \(judged.map(\.raw))")

            // A slot freed: the third is judged and served.
            close(held.removeFirst())
            let answer = try await third.value
            #expect(answer == "+\r\nTHIRD\n", "\(answer.debugDescription)")
        }
    }

    @Test("--check shows that the SSH listeners answer TCPMUX, and notes what would surprise")
    func check() async throws {
        let environment = try await TestEnvironment.make()
        var options = Self.options()
        var sshLike = TestService.exec("SSH-keys", "/bin/cat")
        sshLike.extra = ["tcpmux = true"]
        options.services.append(sshLike)
        let file = try environment.directory.write("check.toml", environment.configText(options))
        let checked = try await environment.runFived(["--config", file, "--check"])
        #expect(checked.exitStatus == 0, "\(checked)")
        #expect(checked.stdoutText.contains("\ntcpmux on ssh port: yes (SSH- speaks SSH, a name line TCPMUX, 1 s of silence SSH)\n"), "\(checked)")
        #expect(checked.stdoutText.contains("clients must name ssh-keys in lowercase"), "\(checked)")
        #expect(!checked.stdoutText.contains("no tcpmux listener"), "\(checked)")

        let plain = try environment.directory.write("plain.toml", environment.configText(FivedOptions()))
        let without = try await environment.runFived(["--config", plain, "--check"])
        #expect(without.stdoutText.contains("\ntcpmux on ssh port: no\n"), "\(without)")

        let bad = try environment.directory.write("bad.toml", "tcpmux_on_ssh_port = \"yes\"\n")
        let refused = try await environment.runFived(["--config", bad, "--check"])
        #expect(refused.exitStatus == 1, "\(refused)")
        #expect(
            nonEmptyLines(refused.stderr).count == 1 && refused.stderr.contains("bad.toml:1: tcpmux_on_ssh_port: must be true or false, not a string"),
            "\(refused)")
    }
}

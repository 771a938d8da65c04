#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

private let curl = program("/usr/bin/curl", "/usr/local/bin/curl")
private let parserMissing = PythonClient.missing(module: "prometheus_client", package: "python3-prometheus-client")

/// The built-in `metrics` service and `metrics_listen`: Prometheus text read with
/// curl through a stock `ssh -L PORT:metrics:1` and on the loopback listener,
/// parsed by prometheus_client's own parser (Peers/parse_metrics.py), with the
/// counters checked against the channels the test makes.
@Suite("Metrics", .timeLimit(.minutes(3)))
struct MetricsTests {
    /// Why `scrape` cannot run here, if it cannot.
    static var scrapeMissing: String? {
        curl == nil ? "needs curl (apt-get install curl)" : parserMissing
    }

    /// One scrape, parsed.
    struct Scrape {
        let families: [String: String]
        let samples: [(name: String, labels: [String: String], value: Double)]

        /// The sum of the samples named `name` whose labels include `labels`.
        func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
            matching(name, labels).reduce(0) { $0 + $1.value }
        }

        func has(_ name: String, _ labels: [String: String] = [:]) -> Bool {
            !matching(name, labels).isEmpty
        }

        private func matching(_ name: String, _ labels: [String: String]) -> [(name: String, labels: [String: String], value: Double)] {
            samples.filter { sample in
                sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value }
            }
        }
    }

    /// GETs `http://127.0.0.1:PORT/PATH` with curl; returns the status line's code and the body.
    static func get(_ port: UInt16, _ path: String = "/metrics", in directory: TestDirectory) async throws -> (status: Int, body: String, raw: ProcessResult) {
        let got = try await runProcess(
            try #require(curl), ["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"],
            environment: Tools.environment(home: directory.path), scratch: directory.path, timeout: .seconds(30))
        var text = got.stdoutText
        guard got.exitStatus == 0, let newline = text.lastIndex(of: "\n") else { return (0, text, got) }
        let status = Int(text[text.index(after: newline)...]) ?? 0
        text = String(text[..<newline])
        return (status, text, got)
    }

    /// Scrapes `port` and parses the text with prometheus_client.
    static func scrape(_ port: UInt16, in directory: TestDirectory) async throws -> Scrape {
        let (status, body, raw) = try await get(port, in: directory)
        try #require(status == 200, "scrape of \(port): \(raw)")
        let input = try directory.write("scrape-\(UInt32.random(in: 0...UInt32.max)).txt", body)
        let parsed = try await Peers.run("parse_metrics.py", [], in: directory, stdin: .file(input), timeout: .seconds(30))
        try #require(parsed.exitStatus == 0, "prometheus_client did not parse the exposition: \(parsed.stderr)\n\(body)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(parsed.stdout)) as? [String: Any])
        let families = try #require(json["families"] as? [String: String])
        let samples = try #require(json["samples"] as? [[String: Any]]).map { sample in
            (
                name: sample["name"] as? String ?? "", labels: sample["labels"] as? [String: String] ?? [:],
                value: (sample["value"] as? NSNumber)?.doubleValue ?? .nan
            )
        }
        return Scrape(families: families, samples: samples)
    }

    @Test(
        "curl through ssh -L PORT:metrics:1 and on metrics_listen: the text parses and the counters follow the channels made",
        .enabled(if: curl != nil && parserMissing == nil, "needs curl and python3-prometheus-client (apt-get install curl python3-prometheus-client)"))
    func scrapeBothWays() async throws {
        let environment = try await TestEnvironment.make()
        let admin = try await environment.newKey(.ed25519, name: "id_admin", comment: "admin@ops")
        try environment.setAuthorizedKeys([environment.key.authorizedLine(), admin.authorizedLine()])
        let options = FivedOptions(
            extraTOML: "metrics_listen = \"127.0.0.1:0\"\n[services.metrics]\nallow = [\"admin@ops\"]\n")
        try await environment.withFived(options) { fived in
            let dir = fived.directory
            let listenerPort = try await Fived.waitForListening(fived.process, message: "metrics listening")

            // Prometheus's view through a stock ssh -L with the admin key.
            let port = try Sockets.unusedPort()
            let forward = try fived.spawnSSH(
                ["-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:\(port):metrics:1"], identity: .key(admin), name: "metrics-L")
            defer { forward.signal(SIGTERM) }
            #expect(await eventually { !forward.isRunning || isListening(port: port) } && forward.isRunning, "\(forward.stderr)")

            let before = try await Self.scrape(port, in: dir)
            for name in [
                "fived_connections_open", "fived_connections", "fived_authentications", "fived_channel_refusals",
                "fived_startups_queued", "fived_startups_waiting", "fived_startups_dropped", "fived_published_names",
                "fived_exec_processes", "fived_channels_open",
            ] {
                #expect(before.families[name] != nil, "no \(name) family: \(before.families)")
            }
            // The scrape's own channel is open while it is answered.
            #expect(before.sum("fived_channels_open", ["service": "metrics", "form": "direct-tcpip"]) >= 1)

            // Three echo channels of 6 bytes each way, and two refused opens of
            // `metrics` by a key that is not on its allow list.
            for _ in 0..<3 {
                let echoed = try await fived.stdio("echo", Array("hello\n".utf8))
                #expect(echoed.stdout == Array("hello\n".utf8), "\(echoed)")
            }
            let refusedDirect = try await fived.ssh(["-W", "metrics:1"])
            #expect(refusedDirect.exitStatus == 255 && refusedDirect.stdout.isEmpty, "\(refusedDirect)")
            let refusedExec = try await fived.ssh(command: ["metrics"])
            #expect(refusedExec.exitStatus == 1 && refusedExec.stderr.contains("fived: service not available"), "\(refusedExec)")
            #expect(await eventually { fived.channelClosedLines.filter { $0["service"] == "echo" }.count == 3 }, "\(fived.logText)")
            #expect(await eventually { fived.descendants().isEmpty }, "cat still runs: \(fived.descendants())")

            let after = try await Self.scrape(port, in: dir)
            let echo = ["service": "echo", "form": "direct-tcpip"]
            #expect(after.sum("fived_channels_total", echo) - before.sum("fived_channels_total", echo) == 3)
            #expect(after.sum("fived_channels_open", echo) == 0)
            #expect(
                after.sum("fived_channel_bytes_total", ["service": "echo", "direction": "in"])
                    - before.sum("fived_channel_bytes_total", ["service": "echo", "direction": "in"]) == 18)
            #expect(
                after.sum("fived_channel_bytes_total", ["service": "echo", "direction": "out"])
                    - before.sum("fived_channel_bytes_total", ["service": "echo", "direction": "out"]) == 18)
            #expect(after.sum("fived_channel_duration_seconds_count", ["service": "echo"]) == 3)
            #expect(after.sum("fived_backend_connect_seconds_count", ["service": "echo", "result": "ok"]) == 3)
            #expect(after.families["fived_channel_duration_seconds"] == "histogram")
            #expect(
                after.sum("fived_channel_refusals_total", ["reason": "metrics_not_allowed"])
                    - before.sum("fived_channel_refusals_total", ["reason": "metrics_not_allowed"]) == 2)
            // Five more logins (three echo, two refused), each a publickey success.
            let logins = ["method": "publickey", "result": "success"]
            #expect(after.sum("fived_authentications_total", logins) - before.sum("fived_authentications_total", logins) >= 5)
            #expect(after.sum("fived_connections_total") - before.sum("fived_connections_total") >= 5)
            // The exec processes were started and reaped.
            #expect(after.sum("fived_exec_processes") == 0)
            // The forward's connection stays open; the workers' lag has been sampled.
            #expect(after.sum("fived_connections_open") >= 1)
            #expect(
                await eventually(timeout: .seconds(5)) {
                    (try? await Self.scrape(port, in: dir))?.has("fived_worker_loop_lag_seconds_count", ["worker": "0"]) == true
                })

            // The loopback listener answers the same text, and only GET /metrics.
            let local = try await Self.scrape(listenerPort, in: dir)
            #expect(local.sum("fived_metrics_scrapes_total", ["via": "listener"]) >= 1)
            #expect(local.sum("fived_metrics_scrapes_total", ["via": "channel"]) >= 2)
            #expect(local.sum("fived_channels_total", echo) == after.sum("fived_channels_total", echo))
            let other = try await Self.get(listenerPort, "/other", in: dir)
            #expect(other.status == 404, "\(other.raw)")

            // help lists metrics to the admin only.
            let adminHelp = try await fived.ssh(command: ["help"], identity: .key(admin))
            #expect(adminHelp.stdoutText == "echo\nmetrics\n", "\(adminHelp)")
            let help = try await fived.ssh(command: ["help"])
            #expect(help.stdoutText == "echo\n", "\(help)")
        }
    }

    @Test(
        "TCPMUX connections are counted by how they ended; one that reaches its service is that service's channel of form tcpmux",
        .enabled(
            if: curl != nil && parserMissing == nil && !SharedPortTests.pythonMissing,
            "needs curl, python3 and python3-prometheus-client (apt-get install curl python3-prometheus-client)"))
    func tcpmuxCounted() async throws {
        var options = SharedPortTests.options(extraTOML: "metrics_listen = \"127.0.0.1:0\"\n[limits]\nmax_startups_per_source = 64")
        options.tcpmux = true
        try await TestEnvironment.withFived(options) { fived in
            let listenerPort = try await Fived.waitForListening(fived.process, message: "metrics listening")
            let plain = try #require(fived.tcpmuxPort)
            // On the plain listener and on the SSH port: both are counted.
            let served = try await SharedPortTests.tcpmux(fived, port: plain, "upper\\r\\nhello, metrics\\n")
            #expect(served.stdoutText == "+\r\nHELLO, METRICS\n", "\(served)")
            let shared = try await SharedPortTests.tcpmux(fived, "upper\\r\\nagain\\n")
            #expect(shared.stdoutText == "+\r\nAGAIN\n", "\(shared)")
            // HELP; echo (configured, not offered on TCPMUX); a name that is no
            // service; an invalid name.
            for request in ["HELP\\r\\n", "echo\\r\\n", "nothing-here\\r\\n", "bad name\\r\\n"] {
                let answered = try await SharedPortTests.tcpmux(fived, port: plain, request)
                #expect(answered.exitStatus == 0, "\(answered)")
            }
            #expect(
                await eventually { fived.logLines.filter { $0.message == "tcpmux closed" }.count == 6 }, "\(fived.logText)")
            let upperLines = fived.logLines.filter { $0.message == "tcpmux closed" && $0["service"] == "upper" }
            let movedIn = upperLines.compactMap { $0["bytes_in"].flatMap(Double.init) }.reduce(0, +)
            let movedOut = upperLines.compactMap { $0["bytes_out"].flatMap(Double.init) }.reduce(0, +)

            let scrape = try await Self.scrape(listenerPort, in: fived.directory)
            #expect(scrape.families["fived_tcpmux_connections"] == "counter", "\(scrape.families)")
            for (outcome, count) in [("served", 2.0), ("help", 1), ("refused", 3)] {
                #expect(scrape.sum("fived_tcpmux_connections_total", ["outcome": outcome]) == count, "\(outcome)")
            }
            let upper = ["service": "upper", "form": "tcpmux"]
            #expect(scrape.sum("fived_channels_total", upper) == 2)
            #expect(scrape.sum("fived_channels_open", upper) == 0)
            #expect(movedIn > 0 && scrape.sum("fived_channel_bytes_total", ["service": "upper", "direction": "in"]) == movedIn)
            #expect(movedOut > 0 && scrape.sum("fived_channel_bytes_total", ["service": "upper", "direction": "out"]) == movedOut)
            #expect(scrape.sum("fived_channel_duration_seconds_count", ["service": "upper"]) == 2)
            #expect(scrape.sum("fived_backend_connect_seconds_count", ["service": "upper", "result": "ok"]) == 2)
            for reason in ["not_allowed", "unknown_service", "invalid_name"] {
                #expect(scrape.sum("fived_channel_refusals_total", ["reason": reason]) == 1, "\(reason)")
            }
        }
    }

    @Test("metrics_listen takes loopback addresses only, and a bad one is a one-line error naming the key")
    func listenValidated() async throws {
        let environment = try await TestEnvironment.make()
        for (value, expected) in [
            ("0.0.0.0:9101", "metrics_listen: '0.0.0.0:9101' is not a loopback address"),
            ("127.0.0.1", "metrics_listen: '127.0.0.1' has no port"),
        ] {
            let path = try environment.directory.write(
                "bad-metrics.toml", "listen = [\"127.0.0.1:0\"]\nmetrics_listen = \(tomlString(value))\n")
            let run = try await environment.runFived(["--config", path, "--check"])
            #expect(run.exitStatus == 1, "\(run)")
            let lines = run.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains("bad-metrics.toml:2: \(expected)"), "\(run)")
        }
    }
}

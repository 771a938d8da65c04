#if canImport(Glibc)
import Glibc
#endif
import FivedCore
import Foundation
import Synchronization
import Testing

/// Names across nodes (SPEC "Fleet", docs/fleet.md): three fived nodes on
/// loopback sharing a real etcd, driven by the stock OpenSSH client.
@Suite(
    "Fleet", .serialized, .timeLimit(.minutes(3)),
    .enabled(if: EtcdProcess.binary != nil, "etcd-server is not installed (apt-get install etcd-server)"))
struct FleetTests {
    /// An exec service that prints what fived told it about the caller, then echoes.
    static func identityService(_ name: String, export: Bool = true, allow: [String]? = nil) -> TestService {
        var service = TestService.exec(
            name, "/bin/sh", "-c",
            "printf 'user=%s\\nfingerprint=%s\\ncomment=%s\\nclient=%s:%s\\nservice=%s\\n' \"$FIVED_USER\" \"$FIVED_KEY_FINGERPRINT\" \"$FIVED_KEY_COMMENT\" \"$FIVED_CLIENT_ADDR\" \"$FIVED_CLIENT_PORT\" \"$FIVED_SERVICE\"; exec /bin/cat",
            allow: allow)
        if export { service.extra.append("export = true") }
        return service
    }

    static func echo(_ name: String, export: Bool = true) -> TestService {
        var service = TestService.exec(name, "/bin/cat")
        if export { service.extra.append("export = true") }
        return service
    }

    /// The `key=value` lines an identity service printed.
    static func fields(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return out
    }

    @Test(
        "a name published on A is reached through B and C: bytes intact, the caller's identity in the PROXY v2 header, the hop in both logs; a second publisher anywhere is refused"
    )
    func publishedAcrossNodes() async throws {
        try await TestEnvironment.withPublishingEnvironment(["publisher"], permitlisten: "laptop-*:*") { environment, keys, echo in
            let publisherKey = keys[0]
            let recorder = try RecordingServer(reply: Array("recorded\n".utf8))
            defer { recorder.stop() }
            try await FleetNodes.start(environment).run { fleet in
                let a = try fleet["a"], b = try fleet["b"], c = try fleet["c"]
                let publisher = try a.spawnPublisher(
                    "laptop-web:1:127.0.0.1:\(echo.port)", "laptop-id:2:127.0.0.1:\(recorder.port)", key: publisherKey, name: "publisher")
                defer { publisher.signal(SIGKILL) }
                let probe = Array("probe\n".utf8)
                var last: ProcessResult?
                let reached = try await eventually(timeout: .seconds(15)) {
                    guard publisher.isRunning else { return true }
                    last = try await b.stdio("laptop-web", probe)
                    return last?.stdout == probe
                }
                #expect(
                    reached && publisher.isRunning, "publisher: \(publisher.stderr)\nlast: \(last.map { "\($0)" } ?? "-")\nA: \(a.logText)\nB: \(b.logText)")

                let data = randomBytes(1 << 20)
                let viaB = try await b.stdio("laptop-web", data, timeout: .seconds(60))
                #expect(viaB.exitStatus == 0, "\(viaB)")
                expectBytes(viaB.stdout, data, "1 MiB through B to the name published on A (-W)")
                let viaC = try await c.ssh(command: ["laptop-web"], stdin: try c.input(data), timeout: .seconds(60))
                #expect(viaC.exitStatus == 0, "\(viaC)")
                expectBytes(viaC.stdout, data, "1 MiB through C to the name published on A (exec form)")

                // Identity: the publisher asked for PROXY v2 (port 2); the header names the caller on C.
                let hello = try await c.stdio("laptop-id", Array("hi\n".utf8))
                #expect(hello.stdoutText == "recorded\n", "\(hello)")
                let recorded = try #require(recorder.recordings.last)
                guard case .header(let header, let length) = ProxyV2Header.decode(recorded) else {
                    Issue.record("no PROXY v2 header in \(recorded.prefix(64))")
                    return
                }
                #expect(Array(recorded[length...]) == Array("hi\n".utf8))
                let tlv = { (type: UInt8) in header.tlvs.first { $0.type == type }.map { String(decoding: $0.value, as: UTF8.self) } }
                #expect(tlv(ProxyV2Header.userType) == environment.user)
                #expect(tlv(ProxyV2Header.fingerprintType) == environment.key.fingerprint)
                #expect(tlv(ProxyV2Header.commentType) == environment.key.comment)
                #expect(tlv(ProxyV2Header.serviceType) == "laptop-id")
                let onC = await c.waitForLog { $0.message == "channel closed" && $0["service"] == "laptop-id" && $0["form"] == "direct-tcpip" }
                #expect(onC?["node_hop"] == "c->a", "C's log: \(c.logText)")
                #expect(onC?["client"] == "\(header.sourceAddress):\(header.sourcePort)", "the caller's address and port reach the target unchanged: \(header)")
                let onA = await a.waitForLog { $0.message == "channel closed" && $0["service"] == "laptop-id" && $0["node_hop"] == "c->a" }
                #expect(
                    onA?["user"] == environment.user && onA?["fingerprint"] == environment.key.fingerprint
                        && onA?["client"] == onC?["client"], "A logs the relayed caller: \(onA.map { "\($0)" } ?? a.logText)")

                // One name, one owner, fleet-wide: a second publisher on C gets the usual refusal.
                let second = try await c.publishing("laptop-web:1:127.0.0.1:\(echo.port)", identity: .key(publisherKey))
                #expect(second.exitStatus == 255, "\(second)")
                #expect(await c.waitForLog { $0.message == "publish refused" && $0["reason"] == "already published (by node a)" } != nil, "\(c.logText)")

                // A clean cancel (the publisher's disconnect) removes the name at once, fleet-wide.
                publisher.signal(SIGTERM)
                _ = await publisher.wait(timeout: .seconds(5))
                let (gone, after) = try await b.waitUntilUnpublished("laptop-web", probe: probe, timeout: .seconds(3))
                #expect(gone, "the name outlived its publisher: \(after.map { "\($0)" } ?? "-")")
            }
        }
    }

    @Test("64 concurrent relayed channels over one node-to-node connection lose no byte; status shows the peer and its counts")
    func concurrentRelayedChannels() async throws {
        let environment = try await TestEnvironment.make()
        try await FleetNodes.start(environment, services: ["a": [Self.echo("echo")]]).run { fleet in
            let a = try fleet["a"], b = try fleet["b"]
            let warm = try await b.stdio("echo.a", Array("warm\n".utf8))
            #expect(warm.stdoutText == "warm\n", "\(warm)\nA: \(a.logText)\nB: \(b.logText)")
            let (master, control) = try await b.startControlMaster()
            defer { master.signal(SIGTERM) }
            let results = try await withThrowingTaskGroup(of: (Int, Bool, String).self) { group in
                for i in 0..<64 {
                    group.addTask {
                        let data = randomBytes(256 * 1024)
                        let result = try await b.ssh(["-S", control, "-W", "echo.a:1"], stdin: try b.input(data), timeout: .seconds(90))
                        return (
                            i, result.exitStatus == 0 && result.stdout == data,
                            "\(i): exit \(result.exitStatus.map(String.init) ?? "-"), \(byteDifference(result.stdout, data) ?? "same")"
                        )
                    }
                }
                var all: [(Int, Bool, String)] = []
                for try await r in group { all.append(r) }
                return all
            }
            let failed = results.filter { !$0.1 }
            #expect(failed.isEmpty, "\(failed.count) of 64 relayed channels lost bytes: \(failed.map(\.2).prefix(5))")
            // One connection from B to A carried them all.
            #expect(b.logLines.filter { $0.message == "peer connected" && $0["node"] == "a" }.count == 1, "\(b.logText)")
            let relayed = await b.waitForLog { _ in
                b.logLines.filter { $0.message == "channel closed" && $0["form"] == "relay" && $0["node_hop"] == "b->a" }.count >= 65
            }
            #expect(relayed != nil, "B logged \(b.logLines.filter { $0["form"] == "relay" }.count) relay ends")
            let status = try await b.ssh(command: ["status"])
            let row = status.stdoutText.split(separator: "\n").first { $0.hasPrefix("a ") }.map { $0.split(separator: " ") }
            #expect(row?[1] == "up" && Int(row?[4] ?? "") ?? 0 >= 65, "status: \(status.stdoutText)")
        }
    }

    @Test(
        "a relayed channel's bytes reach both nodes' fleet metrics while it is open, its count at its close",
        .enabled(if: MetricsTests.scrapeMissing == nil, "\(MetricsTests.scrapeMissing ?? "")"))
    func relayedMetrics() async throws {
        let environment = try await TestEnvironment.make()
        // `count` answers only at the end: bytes in and out differ, and show which is which.
        var count = TestService.exec("count", "/usr/bin/wc", "-c")
        count.extra.append("export = true")
        try await FleetNodes.start(environment, names: ["a", "b"], services: ["a": [Self.echo("echo"), count]], metrics: true).run { fleet in
            let a = try fleet["a"], b = try fleet["b"]
            let aPort = try await Fived.waitForListening(a.process, message: "metrics listening")
            let bPort = try await Fived.waitForListening(b.process, message: "metrics listening")
            func relayed(_ node: Fived, _ port: UInt16, _ labels: [String: String]) async -> Double {
                (try? await MetricsTests.scrape(port, in: node.directory))?.sum("fived_fleet_relayed_bytes_total", labels) ?? -1
            }
            let warm = try await b.stdio("echo.a", Array("warm\n".utf8))
            #expect(warm.stdoutText == "warm\n", "\(warm)\nA: \(a.logText)\nB: \(b.logText)")

            // A channel held open: the bytes it carried so far show on both nodes
            // (one relayed call each: on B the leg toward A, not also the caller's channel).
            let held = try b.spawnSSH(["-W", "count.a:1"], stdin: .pipe, name: "held")
            defer { held.signal(SIGKILL) }
            try await held.writeStdin(randomBytes(1000))
            let entry = ["peer": "a", "direction": "outbound"]
            let owner = ["peer": "b", "direction": "inbound"]
            for (node, port, labels) in [(b, bPort, entry), (a, aPort, owner)] {
                #expect(await eventually { await relayed(node, port, labels.merging(["bytes": "in"]) { $1 }) == 1005 }, "\(labels) in")
                #expect(await relayed(node, port, labels.merging(["bytes": "out"]) { $1 }) == 5, "\(labels) out")
                let scrape = try await MetricsTests.scrape(port, in: node.directory)
                #expect(scrape.sum("fived_fleet_relayed_channels_total", labels) == 1, "\(labels): only the first channel has closed")
            }

            // Its end: wc's count comes back, and each node counts the channel.
            held.closeStdin()
            #expect(await held.wait(timeout: .seconds(20)) == .exited(0), "\(held.stderr)")
            #expect(held.stdout == Array("1000\n".utf8), "\(held.stdout)")
            for (node, port, labels) in [(b, bPort, entry), (a, aPort, owner)] {
                #expect(
                    await eventually {
                        (try? await MetricsTests.scrape(port, in: node.directory))?.sum("fived_fleet_relayed_channels_total", labels) == 2
                    }, "\(labels)")
                let scrape = try await MetricsTests.scrape(port, in: node.directory)
                #expect(scrape.sum("fived_fleet_relayed_bytes_total", labels.merging(["bytes": "in"]) { $1 }) == 1005, "\(labels)")
                #expect(scrape.sum("fived_fleet_relayed_bytes_total", labels.merging(["bytes": "out"]) { $1 }) == 10, "\(labels)")
            }
        }
    }

    @Test("web exported on A is web.a from C, with the caller's identity; help lists the fleet's names; allow lists and non-exported services hold")
    func exportedService() async throws {
        let environment = try await TestEnvironment.make()
        let other = try await environment.newKey(.ed25519, name: "other", comment: "other@fleet")
        try environment.setAuthorizedKeys([environment.key.publicLine, other.publicLine])
        let services = [
            "a": [
                Self.identityService("web"), Self.identityService("secret", allow: [environment.key.comment]),
                Self.identityService("private", export: false),
            ],
            "c": [Self.echo("tools")],
        ]
        try await FleetNodes.start(environment, services: services).run { fleet in
            let a = try fleet["a"], c = try fleet["c"]
            var result: ProcessResult?
            let reached = try await eventually(timeout: .seconds(10)) {
                result = try await c.ssh(command: ["web.a"], stdin: try c.input(Array("ping\n".utf8)))
                return result?.exitStatus == 0
            }
            #expect(reached, "\(result.map { "\($0)" } ?? "-")\nA: \(a.logText)\nC: \(c.logText)")
            let fields = Self.fields(result?.stdoutText ?? "")
            #expect(fields["user"] == environment.user)
            #expect(fields["fingerprint"] == environment.key.fingerprint)
            #expect(fields["comment"] == environment.key.comment)
            #expect(fields["service"] == "web.a")
            #expect(result?.stdoutText.hasSuffix("ping\n") == true)
            let entry = await c.waitForLog { $0.message == "channel closed" && $0["service"] == "web.a" && $0["form"] == "exec" }
            #expect(
                entry?["client"] == fields["client"],
                "the service sees the caller's address and port as C saw them: \(fields) vs \(entry.map { "\($0)" } ?? "-")")
            #expect(entry?["node_hop"] == "c->a")

            let help = try await c.ssh(command: ["help"])
            #expect(nonEmptyLines(help.stdoutText) == ["secret.a", "status", "tools", "tools.c", "web.a"], "\(help)")
            let helpOther = try await c.ssh(command: ["help"], identity: .key(other))
            #expect(nonEmptyLines(helpOther.stdoutText) == ["tools", "tools.c", "web.a"], "\(helpOther)")

            let denied = try await c.stdio("secret.a", Array("x".utf8))  // allowed for the default key
            #expect(denied.exitStatus == 0, "\(denied)")
            let deniedOther = try await c.ssh(["-W", "secret.a:1"], identity: .key(other), stdin: try c.input(Array("x".utf8)))
            #expect(deniedOther.exitStatus == 255, "\(deniedOther)")
            let hidden = try await c.stdio("private.a", Array("x".utf8))
            #expect(hidden.exitStatus == 255, "a service without export = true is not reachable from other nodes: \(hidden)")
            // The owner refuses a name it does not export even if asked directly by a peer:
            // A's own name for it works locally only.
            let local = try await a.stdio("private", Array("x\n".utf8))
            #expect(local.exitStatus == 0, "\(local)")
        }
    }

    @Test("a node killed with SIGKILL loses its names within the lease; callers are refused, never left hanging; restarted, its names return")
    func nodeDeath() async throws {
        let environment = try await TestEnvironment.make()
        let lease = 3
        try await FleetNodes.start(environment, leaseSeconds: lease, services: ["a": [Self.echo("web")]]).run { fleet in
            let b = try fleet["b"]
            let ping = Array("ping\n".utf8)
            let before = try await b.stdio("web.a", ping)
            #expect(before.stdout == ping, "\(before)")
            await fleet.kill("a")
            let killedAt = ContinuousClock.now
            var slowest = Duration.zero
            var gone = false
            while ContinuousClock.now - killedAt < .seconds(lease + 5) {
                let start = ContinuousClock.now
                let attempt = try await b.stdio("web.a", ping, timeout: .seconds(10))
                slowest = max(slowest, ContinuousClock.now - start)
                #expect(attempt.exitStatus == 255, "a dead node's name must be refused: \(attempt)")
                let help = try await b.ssh(command: ["help"])
                if !nonEmptyLines(help.stdoutText).contains("web.a") {
                    gone = true
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            let goneAfter = ContinuousClock.now - killedAt
            #expect(gone && goneAfter < .seconds(lease + 2), "web.a still registered \(goneAfter) after the kill (lease \(lease) s)")
            #expect(slowest < .seconds(3), "a refusal took \(slowest)")

            try await fleet.start("a")
            var after: ProcessResult?
            let back = try await eventually(timeout: .seconds(15)) {
                after = try await b.stdio("web.a", ping)
                return after?.stdout == ping
            }
            #expect(back, "web.a did not return after A restarted: \(after.map { "\($0)" } ?? "-")\nB: \(b.logText)")
        }
    }

    @Test(
        "etcd stopped: local names answer on every node, remote ones are refused within 1 s; publishing works locally; etcd back: everything returns without restarting fived"
    )
    func etcdOutage() async throws {
        try await TestEnvironment.withPublishingEnvironment(["publisher"], permitlisten: "late:*") { environment, keys, echo in
            let publisherKey = keys[0]
            let services = ["a": [Self.echo("web")], "b": [Self.echo("web")], "c": [Self.echo("web")]]
            try await FleetNodes.start(environment, services: services).run { fleet in
                let a = try fleet["a"], b = try fleet["b"], c = try fleet["c"]
                let ping = Array("ping\n".utf8)
                let before = try await c.stdio("web.a", ping)
                #expect(before.stdout == ping, "\(before)")

                await fleet.etcd.stop(signal: SIGKILL)
                let stoppedAt = ContinuousClock.now
                var refusedAt: Duration?
                var slowest = Duration.zero
                while ContinuousClock.now - stoppedAt < .seconds(5) {
                    let start = ContinuousClock.now
                    let attempt = try await c.stdio("web.a", ping, timeout: .seconds(10))
                    slowest = max(slowest, ContinuousClock.now - start)
                    if attempt.exitStatus == 255 {
                        refusedAt = ContinuousClock.now - stoppedAt
                        break
                    }
                }
                #expect(refusedAt != nil && refusedAt! < .seconds(1), "remote name refused \(refusedAt.map { "\($0)" } ?? "never") after etcd stopped")
                #expect(slowest < .seconds(1), "an open took \(slowest) with etcd away")
                #expect(await c.waitForLog { $0.message == "channel refused" && ($0["reason"] ?? "").contains("fleet registry") } != nil, "\(c.logText)")
                for node in [a, b, c] {
                    let local = try await node.stdio("web", ping)
                    #expect(local.stdout == ping, "local names keep working: \(local)")
                }
                // Publishing works locally with etcd away, and is registered when it returns.
                let publisher = try b.spawnPublisher("late:1:127.0.0.1:\(echo.port)", key: publisherKey, name: "late")
                defer { publisher.signal(SIGKILL) }
                let localPublish = try await eventually(timeout: .seconds(10)) {
                    try await b.stdio("late", ping).stdout == ping
                }
                #expect(localPublish, "publisher: \(publisher.stderr)\nB: \(b.logText)")

                try await fleet.etcd.restart()
                var after: ProcessResult?
                let back = try await eventually(timeout: .seconds(20)) {
                    after = try await c.stdio("web.a", ping)
                    return after?.stdout == ping
                }
                #expect(back, "web.a did not return after etcd did: \(after.map { "\($0)" } ?? "-")\nC: \(c.logText)")
                let published = try await eventually(timeout: .seconds(10)) {
                    try await a.stdio("late", ping).stdout == ping
                }
                #expect(published, "the name published during the outage is not reachable from A: \(a.logText)")
            }
        }
    }

    @Test("--check prints the cluster settings; a bad [cluster] value is one line naming the key")
    func checkCluster() async throws {
        let environment = try await TestEnvironment.make()
        let good = """
            listen = ["127.0.0.1:2222"]
            host_keys = [\(tomlString(environment.directory.file("host")))]
            [services.web]
            exec = ["/bin/cat"]
            export = true
            \(TestService.rootUser)
            [cluster]
            node_name = "Host7"
            etcd_endpoints = ["http://127.0.0.1:2379"]
            node_key = \(tomlString(environment.directory.file("node")))
            """
        let path = try environment.directory.write("good.toml", good)
        let checked = try await environment.runFived(["--config", path, "--check"])
        #expect(checked.exitStatus == 0, "\(checked)")
        #expect(checked.stdoutText.contains("cluster: node_name=host7 prefix=/fived/ lease_seconds=10"), "\(checked.stdoutText)")
        #expect(checked.stdoutText.contains("cluster exports: web.host7"), "\(checked.stdoutText)")
        let bad = good.replacingOccurrences(of: "node_name = \"Host7\"", with: "node_name = \"host.7\"\nlease_seconds = 1")
        let badPath = try environment.directory.write("bad.toml", bad)
        let refused = try await environment.runFived(["--config", badPath, "--check"])
        #expect(refused.exitStatus == 1)
        let lines = nonEmptyLines(refused.stderr)
        #expect(lines.count == 1 && lines[0].contains("cluster.node_name") && lines[0].contains("bad.toml:"), "\(refused)")
    }
}

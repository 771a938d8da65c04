#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Dead peers are found: SSH keepalives from the server, a publisher's name
/// taken over from a connection that no longer answers, and callers of a
/// published name told when the publisher refuses or stays silent. A frozen
/// path is modelled as the issue describes: ssh's ProxyCommand relay (socat)
/// stopped with SIGSTOP, so fived's TCP peer still ACKs but forwards nothing.
@Suite("Liveness", .timeLimit(.minutes(2)))
struct LivenessTests {
    /// The `socat` a ProxyCommand ssh started (its child).
    static func relay(of ssh: ChildProcess, in fived: Fived) async -> pid_t? {
        var found: pid_t?
        _ = await eventually(timeout: .seconds(10)) {
            found = Self.children(of: ssh.pid).first { pid in
                (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("socat") == true
            }
            return found != nil
        }
        return found
    }

    static func children(of parent: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let rest = stat[stat.index(after: close)...].split(separator: " ")
            return rest.count > 1 && pid_t(rest[1]) == parent ? pid : nil
        }
    }

    static func proxyCommand(_ fived: Fived) -> [String] {
        ["-o", "ProxyCommand=socat - TCP:127.0.0.1:\(fived.port)"]
    }

    @Test("a client whose path freezes is dropped after client_alive_count_max unanswered keepalives, and logged")
    func frozenClientIsDropped() async throws {
        let options = FivedOptions(extraTOML: "client_alive_interval_seconds = 1\nclient_alive_count_max = 2\n")
        try await TestEnvironment.withFived(options) { fived in
            let client = try fived.spawnSSH(Self.proxyCommand(fived) + ["-N"], name: "frozen")
            defer { client.signal(SIGKILL) }
            let authenticated = await fived.waitForLog { $0.message == "authenticated" }
            #expect(authenticated != nil)
            let socat = try #require(await Self.relay(of: client, in: fived))
            kill(socat, SIGSTOP)
            defer { kill(socat, SIGKILL) }
            let started = Date()
            let dropped = await fived.waitForLog(timeout: .seconds(15)) {
                $0.message == "connection dropped" && ($0["reason"] ?? "").hasPrefix("client not answering keepalives")
            }
            #expect(dropped?["reason"] == "client not answering keepalives (2 unanswered, 1 s apart)", "\(fived.logText)")
            // 1 s of silence, 2 probes 1 s apart, one more second: about 3 s (250 ms
            // ticks), by fived's own log clock (the test may be scheduled late).
            let took = dropped?.date.map { $0.timeIntervalSince(started) }
            #expect(took.map { $0 < 6 } == true, "dropped \(took.map { "\($0) s" } ?? "never") after the path froze")
            // A live client with the same settings stays connected.
            let live = try await fived.ssh(["-W", "echo:1"], stdin: try fived.input(Array("still fine".utf8)))
            #expect(live.stdoutText == "still fine")
        }
    }

    @Test("an idle client that answers its keepalives stays connected long past client_alive_count_max intervals")
    func idleClientAnsweringStays() async throws {
        let options = FivedOptions(extraTOML: "client_alive_interval_seconds = 1\nclient_alive_count_max = 2\n")
        try await TestEnvironment.withFived(options) { fived in
            // An authenticated connection with no traffic of its own: only the
            // keepalive replies (which libssh may read inside ssh_send_keepalive's
            // own poll, where no socket event reaches fived) show it alive.
            let client = try fived.spawnSSH(["-N"], name: "idle")
            defer { client.signal(SIGKILL) }
            let authenticated = await fived.waitForLog { $0.message == "authenticated" }
            #expect(authenticated != nil)
            try await Task.sleep(for: .seconds(6))
            let dropped = fived.logText.contains("connection dropped")
            #expect(!dropped, "\(fived.logText)")
        }
    }

    @Test("a publisher reconnecting while its old connection hangs takes its name over within about 5 s")
    func hungPublisherIsTakenOver() async throws {
        try await TestEnvironment.withPublishers(["publisher", "other"], permitlisten: "pub:*") { fived, keys, local in
            let (publisherKey, otherKey) = (keys[0], keys[1])
            let first = try await fived.startPublisher(key: publisherKey, forward: "pub:1:127.0.0.1:\(local.port)", extra: Self.proxyCommand(fived))
            let socat = try #require(await Self.relay(of: first, in: fived))
            // The old publisher's path freezes (its ssh stays, blocked: killing it
            // would orphan the stopped relay, and the kernel would hang it up).
            kill(socat, SIGSTOP)
            defer {
                kill(socat, SIGKILL)
                first.signal(SIGKILL)
            }

            // Another key cannot take it: the name is held (its holder is not probed for it).
            let stranger = try await fived.publishing("pub:1:127.0.0.1:\(local.port)", identity: .key(otherKey))
            #expect(stranger.exitStatus == 255, "\(stranger)")

            // The same key, reconnecting: the frozen holder is probed, does not answer, and loses the name.
            let started = ContinuousClock.now
            let second = try fived.spawnPublisher("pub:1:127.0.0.1:\(local.port)", key: publisherKey, name: "second")
            defer { second.signal(SIGKILL) }
            let tookOver = await fived.waitForLog(timeout: .seconds(15)) { $0.message == "published" && $0["took_over"] == "true" }
            #expect(tookOver != nil, "\(fived.logText)")
            #expect(ContinuousClock.now - started < .seconds(9))
            let gone = await fived.waitForLog {
                $0.message == "unpublished" && ($0["reason"] ?? "").hasPrefix("a new connection with the same key took it over")
            }
            #expect(gone != nil, "the old connection did not let the name go: \(fived.logText)")
            let reached = try await fived.stdio("pub", Array("through the new one".utf8))
            #expect(reached.stdoutText == "through the new one" && second.isRunning, "\(reached)\n\(second.stderr)")
        }
    }

    @Test("a caller of a published name whose publisher refuses the channel gets an open failure (ssh -W exits 255), not an empty channel")
    func refusingPublisher() async throws {
        let environment = try await TestEnvironment.make()
        let publisherKey = try await environment.newPublisherKey(permitlisten: "pub:*")
        // The publisher's local target refuses connections, so its client refuses each channel.
        let closed = try Sockets.listenTCP()
        close(closed.fd)
        try await environment.withFived(FivedOptions()) { fived in
            let publisher = try await fived.startPublisher(key: publisherKey, forward: "pub:1:127.0.0.1:\(closed.port)")
            defer { publisher.signal(SIGKILL) }
            let result = try await fived.stdio("pub", Array("hello".utf8))
            #expect(result.exitStatus == 255 && result.stdout.isEmpty, "\(result)")
            #expect(openFailureLine(result) != nil, "\(result)")
        }
    }

    @Test("a caller of a published name whose publisher stays silent gets an open failure after connect_timeout_seconds")
    func silentPublisher() async throws {
        let options = FivedOptions(extraTOML: "client_alive_interval_seconds = 0\n[limits]\nconnect_timeout_seconds = 2\n")
        try await TestEnvironment.withPublisher(permitlisten: "pub:*", options: options) { fived, publisherKey, local in
            let publisher = try await fived.startPublisher(
                key: publisherKey, forward: "pub:1:127.0.0.1:\(local.port)", extra: Self.proxyCommand(fived))
            defer { publisher.signal(SIGKILL) }
            let socat = try #require(await Self.relay(of: publisher, in: fived))
            kill(socat, SIGSTOP)
            defer { kill(socat, SIGKILL) }
            let started = ContinuousClock.now
            let result = try await fived.stdio("pub", Array("hello".utf8))
            let elapsed = ContinuousClock.now - started
            #expect(result.exitStatus == 255 && result.stdout.isEmpty, "\(result)")
            #expect(elapsed >= .seconds(2) && elapsed < .seconds(8), "\(elapsed)")
            let refused = await fived.waitForLog { $0.message == "channel refused" && $0["form"] == "forwarded-tcpip" }
            #expect(refused != nil, "\(fived.logText)")
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import FivedCore
import Foundation
import Synchronization
import Testing

/// `ssh -R NAME:1:HOST:PORT`: a key with permitlisten publishes NAME for as long as
/// its connection lives.
@Suite("Publishing", .timeLimit(.minutes(2)))
struct PublishingTests {
    @Test("a published name is reachable by -W while the publisher is connected, and gone after")
    func publish() async throws {
        try await TestEnvironment.withPublisher(permitlisten: "pub:*") { fived, publisherKey, local in
            let publisher = try fived.spawnPublisher("pub:1:127.0.0.1:\(local.port)", key: publisherKey, name: "ssh-R")
            defer { publisher.signal(SIGKILL) }
            let data = randomBytes(100_000)
            var last: ProcessResult?
            let reached = try await eventually(timeout: .seconds(10)) {
                guard publisher.isRunning else { return true }
                last = try await fived.stdio("pub", data)
                return last?.exitStatus == 0
            }
            #expect(reached && publisher.isRunning, "publisher: \(publisher.stderr)\nclient: \(last.map { "\($0)" } ?? "-")")
            if let last { expectBytes(last.stdout, data, "through the published name") }
            #expect(local.connections >= 1)

            publisher.signal(SIGKILL)
            _ = await publisher.wait(timeout: .seconds(5))
            let (removed, after) = try await fived.waitUntilUnpublished("pub", probe: data)
            #expect(removed, "the name outlived its publisher: \(after.map { "\($0)" } ?? "-")")
        }
    }

    @Test("help lists a published name while it is live, and not before or after")
    func help() async throws {
        try await TestEnvironment.withPublisher(permitlisten: "listed:*") { fived, publisherKey, local in
            let before = try await fived.ssh(command: ["help"])
            #expect(before.exitStatus == 0 && nonEmptyLines(before.stdoutText) == ["echo"], "\(before)")

            let publisher = try await fived.startPublisher(key: publisherKey, forward: "listed:1:127.0.0.1:\(local.port)")
            defer { publisher.signal(SIGKILL) }
            let during = try await fived.ssh(command: ["help"])
            #expect(
                during.exitStatus == 0 && nonEmptyLines(during.stdoutText) == ["echo", "listed"],
                "help while published: \(during)")
            // -W help lists it too (the direct-tcpip form).
            let viaW = try await fived.stdio("help", [])
            #expect(nonEmptyLines(viaW.stdoutText) == ["echo", "listed"], "-W help: \(viaW)")

            publisher.signal(SIGKILL)
            _ = await publisher.wait(timeout: .seconds(5))
            var after: ProcessResult?
            let gone = try await eventually {
                after = try await fived.ssh(command: ["help"])
                return after?.exitStatus == 0 && nonEmptyLines(after!.stdoutText) == ["echo"]
            }
            #expect(gone, "help still lists the name after its publisher died: \(after.map { "\($0)" } ?? "-")")
        }
    }

    @Test("4 MiB through a published name by -W, intact (sha256)")
    func bulkByW() async throws {
        try await bulk(via: "-W")
    }

    @Test("4 MiB through a published name by exec (ssh host NAME), intact (sha256)")
    func bulkByExec() async throws {
        try await bulk(via: "exec")
    }

    /// Publishes an echo target, sends 4 MiB through it by `-W` or the exec form, and
    /// compares hashes; checks both channel ends fived logged carried every byte.
    private func bulk(via form: String) async throws {
        try await TestEnvironment.withPublisher(permitlisten: "bulk:*") { fived, publisherKey, local in
            let publisher = try await fived.startPublisher(key: publisherKey, forward: "bulk:1:127.0.0.1:\(local.port)")
            defer { publisher.signal(SIGKILL) }
            // The loss this guards against depends on timing: three rounds make it likely to show.
            for round in 1...3 {
                let data = randomBytes(4 << 20)
                let want = try await Tools.sha256(data, scratch: fived.directory)
                let result =
                    form == "-W"
                    ? try await fived.stdio("bulk", data, timeout: .seconds(90))
                    : try await fived.ssh(command: ["bulk"], stdin: try fived.input(data), timeout: .seconds(90))
                #expect(result.exitStatus == 0, "round \(round): \(result)")
                let got = try await Tools.sha256(result.stdout, scratch: fived.directory)
                #expect(got == want, "round \(round), \(form): \(byteDifference(result.stdout, data) ?? "")")
                #expect(local.connections == round, "backend connections: \(local.connections)")
                #expect(publisher.isRunning, "the publisher exited: \(publisher.stderr)")
                // Where bytes went missing, if they did: the publisher's forwarded-tcpip channel
                // counts what its client sent back (bytes_in) and what fived sent it (bytes_out).
                _ = await eventually {
                    fived.channelClosedLines.filter { $0["form"] == "forwarded-tcpip" }.count >= round
                }
                let forwarded = fived.channelClosedLines.filter { $0["form"] == "forwarded-tcpip" }.dropFirst(round - 1).first
                #expect(
                    forwarded?["bytes_out"] == "\(data.count)" && forwarded?["bytes_in"] == "\(data.count)",
                    "round \(round), publisher's channel: \(forwarded.map { "\($0)" } ?? "not logged")")
                if got != want { break }
            }
        }
    }

    @Test("a second publisher of a live name is refused (ExitOnForwardFailure: exit 255); the first keeps working")
    func duplicate() async throws {
        try await TestEnvironment.withPublishers(["first", "second"], permitlisten: "dup:*") { fived, keys, firstTarget in
            let (firstKey, secondKey) = (keys[0], keys[1])
            let secondTarget = try EchoServer.tcp()
            defer { secondTarget.stop() }
            let first = try await fived.startPublisher(key: firstKey, forward: "dup:1:127.0.0.1:\(firstTarget.port)")
            defer { first.signal(SIGKILL) }

            let second = try await fived.publishing("dup:1:127.0.0.1:\(secondTarget.port)", identity: .key(secondKey))
            #expect(second.exitStatus == 255, "a second publisher of a live name was not refused: \(second)")
            #expect(second.stderr.contains("remote port forwarding failed"), "\(second)")
            let logged = await fived.waitForLog {
                $0.message == "publish refused" && $0["service"] == "dup" && $0["fingerprint"] == secondKey.fingerprint
            }
            #expect(logged?["reason"] == "already published", "\(String(describing: logged))")

            // Same name in another case is the same name.
            let upper = try await fived.publishing("DUP:1:127.0.0.1:\(secondTarget.port)", identity: .key(secondKey))
            #expect(upper.exitStatus == 255, "DUP was published beside dup: \(upper)")

            #expect(first.isRunning, "the first publisher was disturbed: \(first.stderr)")
            let data = randomBytes(50_000)
            let result = try await fived.stdio("dup", data)
            #expect(result.exitStatus == 0, "\(result)")
            expectBytes(result.stdout, data, "through the first publisher")
            #expect(
                firstTarget.connections == 1 && secondTarget.connections == 0,
                "first target \(firstTarget.connections), second target \(secondTarget.connections)")
        }
    }

    @Test("publishing without permitlisten, or a configured name, is refused")
    func refused() async throws {
        let environment = try await TestEnvironment.make()
        let publisherKey = try await environment.newPublisherKey(permitlisten: "*:*")
        try await environment.withFived(FivedOptions()) { fived in
            let plain = try await fived.publishing("mine:1:127.0.0.1:9", timeout: .seconds(15))
            #expect(plain.exitStatus == 255, "a key without permitlisten published: \(plain)")
            let configured = try await fived.publishing("echo:1:127.0.0.1:9", identity: .key(publisherKey), timeout: .seconds(15))
            #expect(configured.exitStatus == 255, "a configured name was published over: \(configured)")
        }
    }

    @Test("refusals: no permitlisten, permitlisten for another name, forwarding disabled, configured, reserved and malformed names")
    func refusals() async throws {
        let environment = try await TestEnvironment.make()
        let otherKey = try await environment.newKey(.ed25519, name: "other")
        let anyKey = try await environment.newKey(.ed25519, name: "any")
        let restrictedKey = try await environment.newKey(.ed25519, name: "restricted")
        try environment.setAuthorizedKeys([
            environment.key.publicLine,
            otherKey.authorizedLine(options: #"permitlisten="other:*""#),
            anyKey.authorizedLine(options: #"permitlisten="*:*""#),
            restrictedKey.authorizedLine(options: #"no-port-forwarding,permitlisten="mine:*""#),
        ])
        try await environment.withFived(FivedOptions()) { fived in
            /// Runs a publisher that must be refused; checks ssh's exit, fived's logged
            /// reason, and that the name is not reachable afterwards.
            func expectRefused(
                _ name: String, key: ClientKey, reason: (String) -> Bool, _ what: String,
                sourceLocation: SourceLocation = #_sourceLocation
            ) async throws {
                let result = try await fived.publishing("\(name):1:127.0.0.1:9", identity: .key(key))
                #expect(result.exitStatus == 255, "\(what): \(result)", sourceLocation: sourceLocation)
                #expect(
                    result.stderr.contains("remote port forwarding failed"), "\(what): \(result)",
                    sourceLocation: sourceLocation)
                let logged = await fived.waitForLog {
                    $0.message == "publish refused" && $0["fingerprint"] == key.fingerprint
                        && $0["service"]?.lowercased() == name.lowercased()
                }
                #expect(
                    logged.map { reason($0["reason"] ?? "") } == true,
                    "\(what): fived's log: \(logged.map { "\($0)" } ?? "no 'publish refused' line")\n\(fived.logText)",
                    sourceLocation: sourceLocation)
            }

            try await expectRefused(
                "mine", key: environment.key, reason: { $0.contains("permitlisten") },
                "a key without permitlisten")
            try await expectRefused(
                "mine", key: otherKey, reason: { $0.contains("permitlisten") },
                "a key whose permitlisten names another service")
            try await expectRefused(
                "mine", key: restrictedKey, reason: { $0.contains("no-port-forwarding") },
                "no-port-forwarding overrides permitlisten")
            try await expectRefused(
                "echo", key: anyKey, reason: { $0 == "a configured service has that name" },
                "a configured name")
            try await expectRefused(
                "ECHO", key: anyKey, reason: { $0 == "a configured service has that name" },
                "a configured name in another case")
            try await expectRefused("help", key: anyKey, reason: { $0.contains("reserved") }, "the reserved help")
            try await expectRefused(
                "bad/name", key: anyKey, reason: { $0.hasPrefix("invalid service name") },
                "a malformed name")
            try await expectRefused(
                String(repeating: "n", count: 65), key: anyKey,
                reason: { $0.hasPrefix("invalid service name") }, "a 65-character name")

            // None of them became reachable.
            for name in ["mine", "bad/name"] {
                let opened = try await fived.stdio(name, Array("x".utf8), timeout: .seconds(20))
                #expect(opened.exitStatus == 255, "\(name) is reachable after a refused publication: \(opened)")
            }
            #expect(!fived.logLines.contains { $0.message == "published" }, "something was published:\n\(fived.logText)")
            // The configured service is untouched.
            let echo = try await fived.stdio("echo", Array("still mine".utf8))
            #expect(echo.exitStatus == 0 && echo.stdoutText == "still mine", "\(echo)")
        }
    }

    @Test("cancel-tcpip-forward (ssh -O cancel on a ControlMaster) removes the name at once; it can be published again")
    func cancel() async throws {
        try await TestEnvironment.withPublisher(permitlisten: "cancelme:*") { fived, publisherKey, local in
            let control = fived.directory.file("ctl")
            let forward = "cancelme:1:127.0.0.1:\(local.port)"
            let master = try fived.spawnPublisher(
                forward, key: publisherKey, extra: ["-M", "-S", control, "-o", "ControlPersist=no"], name: "ssh-master")
            defer { master.signal(SIGKILL) }
            _ = try #require(
                await fived.waitForLog { $0.message == "published" && $0["service"] == "cancelme" },
                "not published: \(master.stderr)\n\(fived.logText)")
            let reachable = try await fived.stdio("cancelme", Array("one".utf8))
            #expect(reachable.exitStatus == 0 && reachable.stdoutText == "one", "\(reachable)")
            // The control socket must exist before a mux client can use it.
            _ = await eventually { access(control, F_OK) == 0 }

            let cancelled = try await fived.ssh(
                ["-S", control, "-O", "cancel", "-R", forward],
                identity: .key(publisherKey), timeout: .seconds(15))
            #expect(cancelled.exitStatus == 0, "ssh -O cancel failed: \(cancelled)")
            let unpublished = await fived.waitForLog { $0.message == "unpublished" && $0["service"] == "cancelme" }
            #expect(unpublished != nil, "no 'unpublished' log line:\n\(fived.logText)")
            // "At once": the very next open is refused, with no polling.
            let after = try await fived.stdio("cancelme", Array("two".utf8))
            #expect(after.exitStatus == 255 && after.stdout.isEmpty, "the name outlived its cancel: \(after)")
            let help = try await fived.ssh(command: ["help"])
            #expect(!nonEmptyLines(help.stdoutText).contains("cancelme"), "help lists a cancelled name: \(help)")
            #expect(master.isRunning, "cancelling one forward ended the connection: \(master.stderr)")

            // The same connection may publish it again (ssh -O forward).
            let again = try await fived.ssh(
                ["-S", control, "-O", "forward", "-R", forward],
                identity: .key(publisherKey), timeout: .seconds(15))
            #expect(again.exitStatus == 0, "ssh -O forward failed: \(again)")
            let back = try await fived.stdio("cancelme", Array("three".utf8))
            #expect(back.exitStatus == 0 && back.stdoutText == "three", "not reachable after re-publishing: \(back)")
            _ = try? await fived.ssh(["-S", control, "-O", "exit"], identity: .key(publisherKey), timeout: .seconds(10))
        }
    }

    @Test("a publisher that dies mid-stream ends a -W caller's channel: its ssh exits, no hang")
    func publisherDiesUnderW() async throws {
        try await publisherDies(callerOptions: ["-W", "fragile:1"], command: [])
    }

    @Test("a publisher that dies mid-stream ends an exec caller's channel (ssh host NAME, stdin still open): its ssh exits")
    func publisherDiesUnderExec() async throws {
        try await publisherDies(callerOptions: [], command: ["fragile"])
    }

    /// A caller whose stdin stays open (only fived can end its channel) is echoing
    /// through a publisher when the publisher is SIGKILLed: the caller must exit.
    private func publisherDies(callerOptions: [String], command: [String]) async throws {
        try await TestEnvironment.withPublisher(permitlisten: "fragile:*") { fived, publisherKey, local in
            let publisher = try await fived.startPublisher(key: publisherKey, forward: "fragile:1:127.0.0.1:\(local.port)")
            defer { publisher.signal(SIGKILL) }

            let caller = try fived.spawnSSH(callerOptions, command: command, stdin: .pipe, name: "caller")
            defer { caller.signal(SIGKILL) }
            try await caller.writeStdin(Array("ping\n".utf8))
            let flowing = await eventually { String(decoding: caller.stdout, as: UTF8.self) == "ping\n" }
            try #require(flowing, "no echo through the publisher: \(caller.stderr)")

            publisher.signal(SIGKILL)
            let started = ContinuousClock.now
            let ended = await caller.wait(timeout: .seconds(10))
            #expect(ended != nil, "the caller still runs 10 s after its publisher died (stdin open): \(caller.stderr)\n\(fived.logText)")
            if case .signaled = ended { Issue.record("the caller died by a signal: \(String(describing: ended))") }
            if ended != nil { #expect(ContinuousClock.now - started < .seconds(5), "took \(ContinuousClock.now - started)") }
            // Nothing extra arrived, nothing was lost.
            #expect(String(decoding: caller.stdout, as: UTF8.self) == "ping\n")
            // fived logged the caller's channel end (not only the publisher's), and still serves.
            let closed = await fived.waitForLog(timeout: .seconds(2)) {
                $0.message == "channel closed" && $0["service"] == "fragile" && $0["form"] != "forwarded-tcpip"
            }
            #expect(closed != nil, "the caller's channel end was not logged")
            let echo = try await fived.stdio("echo", Array("alive".utf8))
            #expect(echo.exitStatus == 0 && echo.stdoutText == "alive", "\(echo)")
        }
    }

    @Test("port 2: the local target gets a PROXY v2 header naming the caller (user, key fingerprint, address), then the bytes")
    func proxyHeader() async throws {
        let environment = try await TestEnvironment.make()
        let publisherKey = try await environment.newPublisherKey(permitlisten: "ident:*", comment: "the-publisher")
        let target = try HeaderEchoServer()
        defer { target.stop() }
        try await environment.withFived(FivedOptions()) { fived in
            // -v: ssh then logs each forwarded-tcpip open with its originator.
            let publisher = try await fived.startPublisher(key: publisherKey, forward: "ident:2:127.0.0.1:\(target.port)", extra: ["-v"])
            defer { publisher.signal(SIGKILL) }

            let payload = Array("after the header\n".utf8)
            let result = try await fived.stdio("ident", payload)
            #expect(result.exitStatus == 0, "\(result)")
            #expect(result.stdout == payload, "the caller must see only the service's bytes: \(result)")

            let decoded = try #require(target.decoded.first, "the target got no connection")
            guard case .header(let header, _) = decoded else {
                Issue.record("no PROXY v2 header: \(decoded)")
                return
            }
            func text(_ type: UInt8) -> String? { header.value(of: type).map { String(decoding: $0, as: UTF8.self) } }
            #expect(text(ProxyV2Header.userType) == environment.user, "0xE1 user")
            #expect(
                text(ProxyV2Header.fingerprintType) == environment.key.fingerprint,
                "0xE2 must be the caller's key, not the publisher's (\(publisherKey.fingerprint))")
            #expect(text(ProxyV2Header.commentType) == environment.key.comment, "0xE3 comment")
            #expect(text(ProxyV2Header.serviceType) == "ident", "0xE0 service")
            #expect(header.value(of: ProxyV2Header.uniqueIDType)?.isEmpty == false, "0x05 UNIQUE_ID")
            #expect(header.sourceAddress == IPAddress("127.0.0.1"), "source = the caller's address")
            #expect(header.destinationPort == fived.port, "destination = fived's port")
            #expect(target.afterHeader.first == payload, "the bytes after the header: \(target.afterHeader)")

            // The caller's client address and port: in the header, in fived's log, and as
            // the forwarded-tcpip originator the publisher's ssh saw.
            let logged = await fived.waitForLog {
                $0.message == "channel closed" && $0["service"] == "ident" && $0["form"] == "direct-tcpip"
            }
            #expect(logged?["client"] == "127.0.0.1:\(header.sourcePort)", "\(String(describing: logged))")
            let originatorSeen = await eventually {
                publisher.stderr.contains("originator 127.0.0.1 port \(header.sourcePort)")
            }
            #expect(originatorSeen, "the publisher's ssh did not see the caller as originator:\n\(publisher.stderr)")

            // A second caller gets its own unique id.
            _ = try await fived.stdio("ident", payload)
            let ids = target.decoded.compactMap { d -> [UInt8]? in
                if case .header(let h, _) = d { return h.value(of: ProxyV2Header.uniqueIDType) }
                return nil
            }
            #expect(ids.count == 2 && ids[0] != ids[1], "unique ids: \(ids)")
        }
    }
}

/// A local target for a port-2 publication: reads the PROXY v2 header with
/// `ProxyV2Header.decode`, keeps it, then echoes the rest of the stream.
private final class HeaderEchoServer: Sendable {
    let port: UInt16
    private let listener: Int32
    private let headers = Mutex<[ProxyV2Header.Decoded]>([])
    private let rest = Mutex<[[UInt8]]>([])

    /// What decode said for each connection, in the order of their headers.
    var decoded: [ProxyV2Header.Decoded] { headers.withLock { $0 } }
    /// The bytes after the header, per finished connection.
    var afterHeader: [[UInt8]] { rest.withLock { $0 } }

    init() throws {
        (listener, port) = try Sockets.listenTCP()
        Sockets.acceptEach(listener) { [self] fd in serve(fd) }
    }

    func stop() { shutdown(listener, Int32(SHUT_RDWR)) }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var pending: [UInt8] = []
        var outcome = ProxyV2Header.Decoded.needMore
        // The header first (it may arrive in pieces, or with data behind it).
        while case .needMore = outcome {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += buffer[0..<n]
            outcome = ProxyV2Header.decode(pending)
        }
        headers.withLock { $0.append(outcome) }
        guard case .header(_, let length) = outcome else { return }
        var body = Array(pending[length...])
        if !body.isEmpty, (try? Sockets.writeAll(fd, body)) == nil { return }
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            body += buffer[0..<n]
            guard (try? Sockets.writeAll(fd, Array(buffer[0..<n]))) != nil else { return }
        }
        shutdown(fd, Int32(SHUT_WR))
        rest.withLock { $0.append(body) }
    }
}

import FivedSystem
@testable import LibSSH
import SSHTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What the server thread saw, handed to the test thread.
final class Observed: Sendable {
    private let kinds = Mutex<[SSHMessage.Kind]>([])
    private let notes = ThreadNotes()

    func record(_ kind: SSHMessage.Kind) { kinds.withLock { $0.append(kind) } }
    var all: [SSHMessage.Kind] { kinds.withLock { $0 } }

    subscript(key: String) -> String? {
        get { notes[key] }
        set { notes[key] = newValue }
    }

    /// Waits (up to 5 s) until `key` is set.
    func wait(for key: String) -> String? { notes.wait(for: key) }
}

/// The LibSSH wrapper against a libssh server in this process: requests arrive
/// through libssh's message queue and may be answered later.
@Suite("LibSSH message queue", .serialized, .timeLimit(.minutes(1)))
struct MessageQueueTests {
    @Test("authentication arrives as messages: service, then a signed public-key request that logs the client in")
    func authenticationByMessages() throws {
        let seen = Observed()
        let server = try InProcessServer { _, message in
            seen.record(message.kind)
            if case .authentication(let request) = message.kind, request.state == .verified {
                seen["key"] = message.authenticationKeyBlob.map { "\($0.count)" } ?? "none"
            }
            _ = acceptEveryKey(message)
        }
        defer { server.stop() }
        let client = try connectedClient(port: server.port, user: "alice")
        defer { client.disconnect() }
        #expect(seen.wait(for: "key") == "51")  // an Ed25519 public key blob: 4+11+4+32 bytes
        #expect(seen.all.contains(.service("ssh-userauth")))
        #expect(seen.all.contains(.authentication(.init(user: "alice", method: .none, state: nil))))
        #expect(seen.all.contains(.authentication(.init(user: "alice", method: .publicKey, state: .verified))))
    }

    @Test("a channel open names its destination, originator, window and maximum packet (libssh's own 64,000 and 32,768)")
    func channelOpenParameters() throws {
        let seen = Observed()
        let server = try InProcessServer { _, message in
            if acceptEveryKey(message) { return }
            if case .channelOpen(let open) = message.kind {
                seen["open"] =
                    "\(open.type) \(open.destination!.host):\(open.destination!.port) from \(open.originator!.host):\(open.originator!.port) window \(open.window.map(String.init) ?? "?") packet \(open.maxPacket.map(String.init) ?? "?")"
                message.refuse()
            }
        }
        defer { server.stop() }
        let client = try connectedClient(port: server.port)
        defer { client.disconnect() }
        let channel = try #require(client.makeChannel())
        #expect(throws: LibSSHError.self) {
            _ = try channel.openForward(host: "echo", port: 1, originatorHost: "192.0.2.9", originatorPort: 5555)
        }
        #expect(seen.wait(for: "open") == "directTCPIP echo:1 from 192.0.2.9:5555 window 64000 packet 32768")
    }

    @Test("an open held back by the server is answered later: the client waits, then has its channel")
    func deferredOpenAnswer() throws {
        let answered = Mutex<Int>(0)
        let heldAt = Mutex<Int64>(0)
        final class Box: @unchecked Sendable { var messages: [SSHMessage] = [] }
        let box = Box()
        let server = try InProcessServer(
            handle: { _, message in
                if acceptEveryKey(message) { return }
                if case .channelOpen = message.kind {
                    box.messages.append(message)
                    heldAt.withLock { $0 = MonotonicClock.now }
                }
            },
            tick: { _ in
                guard let message = box.messages.first, MonotonicClock.now - heldAt.withLock({ $0 }) >= 300 else { return }
                box.messages.removeAll()
                answered.withLock { $0 += 1 }  // before the answer goes out, so the client sees the count
                if let channel = message.acceptChannelOpen() {
                    channel.close()
                    channel.release()
                }
            })
        defer { server.stop() }
        let client = try connectedClient(port: server.port)
        defer { client.disconnect() }
        let channel = try #require(client.makeChannel())
        let started = MonotonicClock.now
        #expect(try channel.openForward(host: "slow", port: 1, originatorHost: "127.0.0.1", originatorPort: 1) == .open)
        #expect(MonotonicClock.now - started >= 290)
        #expect(answered.withLock { $0 } == 1)
    }

    @Test("exec and subsystem requests carry their text and want-reply; a request for a released channel has no channel")
    func channelRequests() throws {
        let seen = Observed()
        final class Box: @unchecked Sendable { var channels: [SSHChannel] = [] }
        let box = Box()
        let server = try InProcessServer { _, message in
            if acceptEveryKey(message) { return }
            switch message.kind {
            case .channelOpen:
                if let channel = message.acceptChannelOpen() { box.channels.append(channel) }
            case .channelRequest(let request):
                let live = message.channel != nil
                seen["request\(seen.all.count)"] = "\(request.type) wantsReply=\(request.wantsReply.map { "\($0)" } ?? "?") live=\(live)"
                seen.record(message.kind)
                if case .exec = request.type {
                    message.acceptChannelRequest()
                    // Release the channel: the next request must find none.
                    box.channels.forEach { $0.release() }
                    box.channels.removeAll()
                }
            default:
                message.refuse()
            }
        }
        defer { server.stop() }
        let client = try connectedClient(port: server.port)
        defer { client.disconnect() }
        let channel = try #require(client.makeChannel())
        #expect(try channel.openSession() == .open)
        #expect(try channel.requestExec("echo hello") == .open)
        #expect(seen.wait(for: "request0") == "exec(\"echo hello\") wantsReply=true live=true")
        // Not answered (the server released the channel): send it and do not wait.
        client.setBlocking(false)
        _ = try? channel.requestSubsystem("sftp")
        #expect(seen.wait(for: "request1") == "subsystem(\"sftp\") wantsReply=true live=false")
    }

    @Test("the remote maximum packet of an open channel is read from libssh, checked against its getters")
    func remoteMaxPacket() throws {
        let seen = Observed()
        let server = try InProcessServer { session, message in
            if acceptEveryKey(message) { return }
            if case .channelOpen = message.kind, let channel = message.acceptChannelOpen() {
                // The server's view: the client's maximum packet (libssh client: 32,768).
                seen["packet"] = channel.remoteMaxPacket.map(String.init) ?? "unknown"
                seen["window"] = "\(channel.windowSize)"
                channel.close()
            }
        }
        defer { server.stop() }
        let client = try connectedClient(port: server.port)
        defer { client.disconnect() }
        let channel = try #require(client.makeChannel())
        _ = try? channel.openForward(host: "x", port: 1, originatorHost: "127.0.0.1", originatorPort: 1)
        #expect(seen.wait(for: "packet") == "32768")
        #expect(seen["window"] == "64000")
    }
}

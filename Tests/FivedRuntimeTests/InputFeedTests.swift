import FivedCore
import FivedSystem
@testable import LibSSH
import SSHTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// fived's reads of a session's socket handed to libssh's packet reader
/// (CLibSSH/shim.h, "Feeding libssh's packet reader"), against a real libssh
/// session: the layout checks pass on the installed libssh, and what the reader
/// parses from fived's reads is the client's traffic, in order.
@Suite("LibSSH input feed", .serialized, .timeLimit(.minutes(1)))
struct InputFeedTests {
    @Test("on this libssh the server session's socket is verified and fed: ignore packets sent by the client are parsed, the rest given back")
    func feedsTheServerSession() throws {
        let seen = ThreadNotes()
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 16 * 1024)
        let server = try InProcessServer(
            handle: { _, message in
                if case .authentication(let request) = message.kind, request.state == .verified { seen["authenticated"] = "yes" }
                if acceptEveryKey(message) { return }
                if case .channelOpen = message.kind {
                    seen["open"] = "yes"
                    message.refuse()
                }
            },
            tick: { session in
                guard seen["authenticated"] != nil, seen["done"] == nil else { return }
                let socket = session.fileDescriptor
                var parsed = 0
                var outcomes: [SessionInputFeed.Outcome] = []
                // Several runs, as the worker makes them, while the client sends.
                for _ in 0..<200 where parsed < 40 * 1024 {
                    let run = feed.run(
                        budget: 8 * 1024,
                        take: { session.takeUnparsedInput(into: $0) },
                        read: { buffer in
                            switch try? Syscall.recv(socket, into: buffer) {
                            case .processed(let n)?: return n == 0 ? .end : .bytes(n)
                            case .wouldBlock?: return .wouldBlock
                            case nil: return .failed("recv")
                            }
                        },
                        parse: { session.parseInput($0) },
                        giveBack: { session.returnUnparsedInput($0) })
                    outcomes.append(run.outcome)
                    parsed += run.bytesParsed
                    if run.outcome == .unavailable || run.outcome == .lost { break }
                    usleep(2_000)
                }
                seen["parsed"] = "\(parsed)"
                seen["outcomes"] = Set(outcomes.map { "\($0)" }).sorted().joined(separator: ",")
                seen["connected"] = session.isConnected ? "yes" : "no"
                seen["done"] = "yes"
            })
        defer { server.stop() }
        let client = try connectedClient(port: server.port)
        defer { client.disconnect() }
        #expect(seen.wait(for: "authenticated", seconds: 10) == "yes")
        // SSH_MSG_IGNORE packets: the server's reader parses and drops them.
        for _ in 0..<400 { client.sendIgnore() }
        #expect(seen.wait(for: "done", seconds: 10) == "yes")
        let outcomes = seen["outcomes"] ?? ""
        #expect(!outcomes.contains("unavailable") && !outcomes.contains("lost"), "outcomes: \(outcomes)")
        #expect(Int(seen["parsed"] ?? "0") ?? 0 > 0)
        #expect(seen["connected"] == "yes")
        // The session still works after fived fed it: a channel opens and is refused normally.
        let channel = try #require(client.makeChannel())
        #expect(throws: LibSSHError.self) {
            _ = try channel.openForward(host: "echo", port: 1, originatorHost: "127.0.0.1", originatorPort: 1)
        }
        #expect(seen["open"] == "yes")
    }

    @Test("a session that is not connected is never fed")
    func refusesAnUnconnectedSession() throws {
        let client = try SSHClient()
        var buffer = [UInt8](repeating: 0, count: 16)
        let taken = buffer.withUnsafeMutableBytes { client.session.takeUnparsedInput(into: $0) }
        #expect(taken == nil)
        let parsed = buffer.withUnsafeBytes { client.session.parseInput($0) }
        #expect(parsed == nil)
    }
}

import FivedCore
@testable import FivedServer
import FivedSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `tcpmux_on_ssh_port`: the acceptor's wait for a connection's first bytes, on
/// real stream sockets (a socketpair): it only peeks, never spins on a partial
/// `SSH-`, and decides silent connections at their deadline.
@Suite("Shared port sniffer", .timeLimit(.minutes(1)))
struct SharedPortSnifferTests {
    let slot = StartupSlot(source: "127.0.0.1")
    let client = Endpoint(address: "127.0.0.1", port: 40000)
    let local = Endpoint(address: "127.0.0.1", port: 1)

    /// A blocking socket pair, as accept gives on an SSH listener: (fived's end, the client's end).
    func pair() throws -> (Descriptor, Descriptor) {
        try Syscall.socketPair(nonBlocking: false)
    }

    func send(_ fd: Descriptor, _ text: String) {
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        #expect(sent == bytes.count)
    }

    /// A new pair whose fived end `sniffer` now watches, undecided for want of bytes:
    /// (fived's end, the client's end).
    func watched(by sniffer: SharedPortSniffer, now: Int64 = MonotonicClock.now) throws -> (Descriptor, Descriptor) {
        let (mine, theirs) = try pair()
        #expect(sniffer.watch(mine, client: client, local: local, slot: slot, now: now) == nil)
        return (mine, theirs)
    }

    /// Whether the sniffer's descriptor polls readable within `milliseconds`.
    func hasNews(_ sniffer: SharedPortSniffer, milliseconds: Int32 = 0) -> Bool {
        var pfd = pollfd(fd: sniffer.descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, milliseconds) == 1
    }

    @Test("bytes already there decide at once: SSH- is SSH, a name line TCPMUX")
    func decidedAtOnce() throws {
        let sniffer = SharedPortSniffer()
        let (mine, theirs) = try pair()
        send(theirs, "SSH-2.0-OpenSSH_9.2\r\n")
        let ssh = sniffer.watch(mine, client: client, local: local, slot: slot, now: 0)
        #expect(ssh?.1 == .ssh(silent: false))
        #expect(sniffer.count == 0)

        let (other, otherClient) = try pair()
        send(otherClient, "upper\r\nhello")
        let tcpmux = sniffer.watch(other, client: client, local: local, slot: slot, now: 0)
        #expect(tcpmux?.1 == .tcpmux)
    }

    @Test("the bytes are only looked at: the next reader gets them all")
    func peekOnly() throws {
        let sniffer = SharedPortSniffer()
        let (mine, theirs) = try watched(by: sniffer)
        send(theirs, "cat\r\nriding along")
        #expect(hasNews(sniffer, milliseconds: 2000))
        let decided = sniffer.decide(now: MonotonicClock.now)
        #expect(decided.count == 1 && decided.first?.1 == .tcpmux)
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = recv(mine.rawValue, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(n > 0 && String(decoding: buffer[0..<n], as: UTF8.self) == "cat\r\nriding along")
    }

    @Test("a partial SSH- waits without waking the acceptor again, and is decided by what follows")
    func partialPrefix() throws {
        let sniffer = SharedPortSniffer()
        let (_, theirs) = try watched(by: sniffer)
        send(theirs, "SS")
        #expect(hasNews(sniffer, milliseconds: 2000))
        #expect(sniffer.decide(now: MonotonicClock.now).isEmpty)
        // Edge-triggered: no news until more bytes arrive (a level-triggered set would spin here).
        #expect(!hasNews(sniffer, milliseconds: 50))
        #expect(sniffer.count == 1)
        send(theirs, "H-2.0-x\r\n")
        #expect(hasNews(sniffer, milliseconds: 2000))
        let decided = sniffer.decide(now: MonotonicClock.now)
        #expect(decided.count == 1 && decided.first?.1 == .ssh(silent: false))
    }

    @Test("silence until the deadline is SSH; a beginning of SSH- at the deadline is SSH too")
    func silence() throws {
        let sniffer = SharedPortSniffer()
        let (quiet, quietClient) = try watched(by: sniffer, now: 1000)
        let (partial, partialClient) = try watched(by: sniffer, now: 1000)
        defer { withExtendedLifetime(quietClient) {} }
        send(partialClient, "S")
        #expect(sniffer.nextDeadline == 1000 + SharedPortOpening.silenceMilliseconds)
        #expect(sniffer.decide(now: 1500).isEmpty)
        let decided = sniffer.decide(now: 2000)
        #expect(decided.count == 2)
        #expect(decided.first { $0.0.socket === quiet }?.1 == .ssh(silent: true))
        #expect(decided.first { $0.0.socket === partial }?.1 == .ssh(silent: false))
        #expect(sniffer.count == 0 && sniffer.nextDeadline == nil)
    }

    @Test("a client that closes before a byte is gone; removeAll hands back what still waits")
    func goneAndRemoved() throws {
        let sniffer = SharedPortSniffer()
        let (_, theirs) = try watched(by: sniffer)
        theirs.close()
        #expect(hasNews(sniffer, milliseconds: 2000))
        let decided = sniffer.decide(now: MonotonicClock.now)
        guard case .gone? = decided.first?.1 else {
            Issue.record("want gone, got \(decided.map(\.1))")
            return
        }
        let (waiting, waitingClient) = try watched(by: sniffer)
        defer { withExtendedLifetime(waitingClient) {} }
        let removed = sniffer.removeAll()
        #expect(removed.count == 1 && removed.first?.socket === waiting && sniffer.count == 0)
    }
}

import FivedCore
import FivedRuntime
import FivedSystem
@testable import LibSSH
import SSHTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Relay ends", .serialized, .timeLimit(.minutes(1)))
struct RelayEndTests {
    @Test func aSocketEndReadsWritesAndSeesTheEnd() throws {
        let (a, b) = try Syscall.socketPair(nonBlocking: true)
        let end = DescriptorEnd(fd: a.rawValue)
        let peer = DescriptorEnd(fd: b.rawValue)
        #expect(Array("hi".utf8).withUnsafeBytes { end.write($0) } == .bytes(2))
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(buffer.withUnsafeMutableBytes { peer.read(into: $0) } == .bytes(2))
        #expect(buffer.withUnsafeMutableBytes { end.read(into: $0) } == .wouldBlock)
        b.close()
        #expect(buffer.withUnsafeMutableBytes { end.read(into: $0) } == .end)
        // The reader is gone: a write is `.closed` (EPIPE), not an error to log.
        #expect(Array("x".utf8).withUnsafeBytes { end.write($0) } == .closed)
    }

    @Test func aPipeEndUsesReadAndWrite() throws {
        let (r, w) = try Syscall.pipe(nonBlocking: true)
        let source = DescriptorEnd(fd: r.rawValue)
        let sink = DescriptorEnd(fd: w.rawValue)
        #expect([UInt8]([1, 2, 3]).withUnsafeBytes { sink.write($0) } == .bytes(3))
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(buffer.withUnsafeMutableBytes { source.read(into: $0) } == .bytes(3))
        w.close()
        #expect(buffer.withUnsafeMutableBytes { source.read(into: $0) } == .end)
    }

    @Test("after CLOSE nothing more goes out on the channel: no data, no EOF, no exit status, no reply, no read")
    func channelOutputIsClosedForGood() throws {
        let outcome = Mutex<String?>(nil)
        let server = try InProcessServer { _, message in
            if acceptEveryKey(message) { return }
            guard case .channelOpen = message.kind, let channel = message.acceptChannelOpen() else { return }
            let output = ChannelOutput(channel: channel)
            output.close()
            output.close()
            var notes: [String] = []
            notes.append("room=\(output.data.room)")
            notes.append("write=\([UInt8]([1, 2]).withUnsafeBytes { output.data.write($0) })")
            notes.append("stderr=\([UInt8]([1]).withUnsafeBytes { output.extendedData.write($0) })")
            var buffer = [UInt8](repeating: 0, count: 4)
            notes.append("read=\(buffer.withUnsafeMutableBytes { output.received.read(into: $0) })")
            output.sendEOF()
            output.sendExit(.status(0))
            outcome.withLock { $0 = notes.joined(separator: " ") }
        }
        defer { server.stop() }
        let client = try connectedClient(port: server.port)
        defer { client.disconnect() }
        let channel = try #require(client.makeChannel())
        #expect(try channel.openForward(host: "x", port: 1, originatorHost: "127.0.0.1", originatorPort: 1) == .open)
        for _ in 0..<200 where outcome.withLock({ $0 }) == nil { usleep(10_000) }
        #expect(outcome.withLock { $0 } == "room=0 write=closed stderr=closed read=wouldBlock")
        // The client sees EOF and CLOSE and nothing after: reading ends at once, with no data.
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = channel.session.withPointer { _ in try? channel.readBuffered(into: UnsafeMutableRawBufferPointer(start: &buffer, count: 16)) }
        #expect(n == nil || n == 0)
    }
}

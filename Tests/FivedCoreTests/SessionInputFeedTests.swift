import Testing

@testable import FivedCore

/// A stand-in for libssh's packet reader: packets are a 2-byte big-endian
/// length and that many bytes; each call parses every whole packet it is
/// offered (as packet.c's reader recurses over them) and returns the bytes used.
private final class FramedReader {
    var packets: [[UInt8]] = []
    var calls: [Int] = []
    /// Bytes the last call left unparsed (offered again at the next call).
    private var left = 0
    /// The most new bytes any call saw beyond what an earlier call was offered.
    var largestStep = 0
    var stopAfter: Int?

    func parse(_ bytes: UnsafeRawBufferPointer) -> Int? {
        if let stopAfter, calls.count >= stopAfter { return nil }
        calls.append(bytes.count)
        largestStep = max(largestStep, bytes.count - left)
        var at = 0
        while bytes.count - at >= 2 {
            let length = Int(bytes[at]) << 8 | Int(bytes[at + 1])
            guard bytes.count - at - 2 >= length else { break }
            packets.append(Array(bytes[(at + 2)..<(at + 2 + length)]))
            at += 2 + length
        }
        left = bytes.count - at
        return at
    }
}

private func frame(_ payloads: [[UInt8]]) -> [UInt8] {
    payloads.flatMap { [UInt8($0.count >> 8), UInt8($0.count & 0xff)] + $0 }
}

/// A socket handing out `stream` in reads of at most `pieces` bytes, then would-block or end.
private final class ScriptedSocket {
    var stream: [UInt8]
    var pieces: Int
    var endsAfterwards = false
    var reads = 0
    init(_ stream: [UInt8], pieces: Int) {
        self.stream = stream
        self.pieces = pieces
    }
    func read(_ buffer: UnsafeMutableRawBufferPointer) -> RelayRead {
        reads += 1
        guard !stream.isEmpty else { return endsAfterwards ? .end : .wouldBlock }
        let n = min(buffer.count, pieces, stream.count)
        buffer.copyBytes(from: stream.prefix(n))
        stream.removeFirst(n)
        return .bytes(n)
    }
}

@Suite struct SessionInputFeedTests {
    let payloads: [[UInt8]] = (0..<40).map { i in [UInt8](repeating: UInt8(i), count: (i * 977) % 9000 + 1) }

    @Test func everyPacketIsParsedInOrderAndTheRestGoesBack() {
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 16 * 1024)
        var stream = frame(payloads)
        let partial = [UInt8(0x10), 0x00, 1, 2, 3]  // the start of a 4,096-byte packet
        stream += partial
        let socket = ScriptedSocket(stream, pieces: 16 * 1024)
        let reader = FramedReader()
        var returned: [UInt8] = []
        let run = feed.run(
            budget: .max, take: { _ in 0 }, read: socket.read, parse: reader.parse,
            giveBack: {
                returned = Array($0); return true
            })
        #expect(reader.packets == payloads, "\(reader.packets.count) of \(payloads.count) packets")
        #expect(returned == partial)
        #expect(run.outcome == .drained)
        #expect(run.bytesRead == stream.count)
        #expect(run.bytesParsed == stream.count - partial.count)
    }

    @Test func theReaderSeesAtMostOneStepOfNewBytesPerCall() {
        let feed = SessionInputFeed(capacity: 512 * 1024, readSize: 256 * 1024)
        let socket = ScriptedSocket(frame(payloads), pieces: 256 * 1024)
        let reader = FramedReader()
        _ = feed.run(budget: .max, take: { _ in 0 }, read: socket.read, parse: reader.parse, giveBack: { _ in true })
        #expect(reader.packets == payloads, "\(reader.packets.count) of \(payloads.count) packets")
        #expect(reader.largestStep <= SessionInputFeed.readerStep)
    }

    @Test func whatLibsshHeldIsParsedFirst() {
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 16 * 1024)
        let stream = frame(payloads)
        let socket = ScriptedSocket(Array(stream[1000...]), pieces: 16 * 1024)
        let reader = FramedReader()
        let run = feed.run(
            budget: .max,
            take: { room in
                room.copyBytes(from: stream[..<1000]); return 1000
            },
            read: socket.read, parse: reader.parse, giveBack: { _ in true })
        #expect(reader.packets == payloads, "\(reader.packets.count) of \(payloads.count) packets")
        #expect(run.bytesParsed == stream.count)
    }

    @Test func aShortReadIsFollowedByAnotherUntilOneWouldBlock() {
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 16 * 1024)
        let socket = ScriptedSocket(frame([[1, 2, 3], [4]]), pieces: 5)  // a packet, then the next right behind
        let reader = FramedReader()
        let run = feed.run(budget: .max, take: { _ in 0 }, read: socket.read, parse: reader.parse, giveBack: { _ in true })
        #expect(run.outcome == .drained && socket.reads == 3)
        #expect(reader.packets == [[1, 2, 3], [4]])
    }

    @Test func theBudgetBoundsOneRunAndTheRestWaitsInTheSocket() {
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 8 * 1024)
        let stream = frame(payloads)
        let socket = ScriptedSocket(stream, pieces: 8 * 1024)
        let reader = FramedReader()
        var returned: [UInt8] = []
        let first = feed.run(
            budget: 20 * 1024, take: { _ in 0 }, read: socket.read, parse: reader.parse,
            giveBack: {
                returned = Array($0); return true
            })
        #expect(first.outcome == .budgetSpent)
        #expect(first.bytesRead >= 20 * 1024 && first.bytesRead < 20 * 1024 + 8 * 1024)
        #expect(socket.stream.count == stream.count - first.bytesRead)
        // The next run starts from what was given back, as libssh would hold it.
        let second = feed.run(
            budget: .max,
            take: { room in
                room.copyBytes(from: returned); return returned.count
            },
            read: socket.read, parse: reader.parse, giveBack: { _ in true })
        #expect(second.outcome == .drained)
        #expect(reader.packets == payloads, "\(reader.packets.count) of \(payloads.count) packets")
    }

    @Test func anUnusableReaderReadsNothing() {
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 16 * 1024)
        let socket = ScriptedSocket(frame(payloads), pieces: 1024)
        let run = feed.run(budget: .max, take: { _ in nil }, read: socket.read, parse: { _ in 0 }, giveBack: { _ in true })
        #expect(run.outcome == .unavailable && socket.reads == 0)
    }

    @Test func theEndOfTheSocketIsLeftForLibssh() {
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 16 * 1024)
        let socket = ScriptedSocket(frame(payloads), pieces: 16 * 1024)
        socket.endsAfterwards = true
        let reader = FramedReader()
        var runs: [SessionInputFeed.Outcome] = []
        var held: [UInt8] = []
        for _ in 0..<20 {
            let run = feed.run(
                budget: .max,
                take: { room in
                    room.copyBytes(from: held); defer { held = [] }; return held.count
                },
                read: socket.read, parse: reader.parse,
                giveBack: {
                    held = Array($0); return true
                })
            runs.append(run.outcome)
            if run.outcome == .ended { break }
        }
        #expect(runs.last == .ended)
        #expect(reader.packets == payloads, "\(reader.packets.count) of \(payloads.count) packets")
    }

    @Test func aStoppedReaderEndsTheRun() {
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 16 * 1024)
        let socket = ScriptedSocket(frame(payloads), pieces: 16 * 1024)
        let reader = FramedReader()
        reader.stopAfter = 3
        let run = feed.run(budget: .max, take: { _ in 0 }, read: socket.read, parse: reader.parse, giveBack: { _ in false })
        #expect(run.outcome == .readerStopped)
        #expect(socket.reads == 1)
    }

    @Test func inputThatCannotGoBackIsReportedLost() {
        let feed = SessionInputFeed(capacity: 64 * 1024, readSize: 16 * 1024)
        let socket = ScriptedSocket(frame(payloads) + [0x10, 0x00, 7], pieces: 16 * 1024)
        let run = feed.run(budget: .max, take: { _ in 0 }, read: socket.read, parse: FramedReader().parse, giveBack: { _ in false })
        #expect(run.outcome == .lost)
    }
}

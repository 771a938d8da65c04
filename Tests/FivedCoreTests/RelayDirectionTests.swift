import Testing
@testable import FivedCore

/// A source that hands out `data` in reads of at most `step` bytes, then would
/// block (`pauses`) or ends.
final class ScriptedSource: RelaySource {
    var data: [UInt8]
    var step: Int
    var ends: Bool
    var failure: String?
    private(set) var reads = 0

    init(_ data: [UInt8], step: Int = .max, ends: Bool = true) {
        self.data = data
        self.step = step
        self.ends = ends
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> RelayRead {
        reads += 1
        if let failure { return .failed(failure) }
        guard !data.isEmpty else { return ends ? .end : .wouldBlock }
        let n = min(buffer.count, step, data.count)
        buffer.copyBytes(from: data[0..<n])
        data.removeFirst(n)
        return .bytes(n)
    }
}

/// A sink that takes at most `accepts` bytes per write and `room` in all, then
/// would block; `result` overrides the outcome.
final class ScriptedSink: RelaySink {
    var received: [UInt8] = []
    var room: Int
    var accepts: Int
    var result: RelayWrite?

    init(room: Int = .max, accepts: Int = .max) {
        self.room = room
        self.accepts = accepts
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> RelayWrite {
        if let result { return result }
        let n = min(bytes.count, accepts, room)
        guard n > 0 else { return .wouldBlock }
        received += bytes[0..<n]
        if room != .max { room -= n }
        return .bytes(n)
    }
}

@Suite("Relay direction")
struct RelayDirectionTests {
    let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }

    @Test func movesEverythingAndSeesTheEnd() {
        let direction = RelayDirection(chunkSize: 1024)
        let source = ScriptedSource(bytes, step: 300)
        let sink = ScriptedSink()
        direction.pump(from: source, to: sink, budget: .max)
        #expect(sink.received == bytes)
        #expect(direction.isDelivered)
        #expect(direction.bytesMoved == bytes.count)
    }

    @Test func readsNoMoreThanTheSinksRoom() {
        let direction = RelayDirection(chunkSize: 4096)
        let source = ScriptedSource(bytes)
        let sink = ScriptedSink(room: 1500)
        direction.pump(from: source, to: sink, budget: .max)
        #expect(sink.received == Array(bytes[0..<1500]))
        // Backpressure: nothing was read beyond what the sink could take.
        #expect(source.data.count == bytes.count - 1500)
        #expect(!direction.hasPending && !direction.sinkReady)
        sink.room = .max
        direction.pump(from: source, to: sink, budget: .max)
        #expect(sink.received == bytes)
    }

    @Test func keepsWhatTheSinkDidNotTakeAndSendsItFirst() {
        let direction = RelayDirection(chunkSize: 4096)
        let source = ScriptedSource(bytes, ends: false)
        let sink = ScriptedSink(accepts: 1000)
        direction.pump(from: source, to: sink, budget: .max)
        #expect(direction.hasPending && !direction.sinkReady)
        #expect(sink.received == Array(bytes[0..<1000]))
        sink.accepts = .max
        direction.sinkReady = true
        direction.pump(from: source, to: sink, budget: .max)
        #expect(sink.received == bytes)
        #expect(!direction.isDelivered)  // the source did not end
    }

    @Test func stopsOnItsBudgetAndSaysSo() {
        let direction = RelayDirection(chunkSize: 1000)
        let source = ScriptedSource(bytes)
        let sink = ScriptedSink()
        #expect(direction.pump(from: source, to: sink, budget: 3000))
        #expect(sink.received.count == 3000)
        #expect(!direction.pump(from: source, to: sink, budget: .max))
        #expect(sink.received == bytes)
    }

    @Test func wouldBlockClearsSourceReady() {
        let direction = RelayDirection(chunkSize: 1000)
        let source = ScriptedSource([1, 2, 3], ends: false)
        direction.pump(from: source, to: ScriptedSink(), budget: .max)
        #expect(!direction.sourceReady && !direction.sourceEnded)
    }

    @Test func heldSourceIsNotRead() {
        let direction = RelayDirection(chunkSize: 1000)
        direction.held = true
        let source = ScriptedSource(bytes)
        direction.pump(from: source, to: ScriptedSink(), budget: .max)
        #expect(source.reads == 0)
    }

    @Test func aReadFailureEndsTheSourceWithItsReason() {
        let direction = RelayDirection(chunkSize: 1000)
        let source = ScriptedSource(bytes)
        source.failure = "Connection reset by peer"
        direction.pump(from: source, to: ScriptedSink(), budget: .max)
        #expect(direction.sourceEnded && direction.readFailure == "Connection reset by peer")
    }

    @Test func aClosedSinkDropsTheRest() {
        let direction = RelayDirection(chunkSize: 1000)
        let sink = ScriptedSink()
        sink.result = .closed
        direction.pump(from: ScriptedSource(bytes), to: sink, budget: .max)
        #expect(direction.sinkClosed && direction.writeFailure == nil && !direction.hasPending)
        // Later offers are taken and dropped.
        let taken = bytes.withUnsafeBytes { direction.offer($0, to: sink) }
        #expect(taken == bytes.count)
    }

    @Test func aFailedSinkKeepsItsReason() {
        let direction = RelayDirection(chunkSize: 1000)
        let sink = ScriptedSink()
        sink.result = .failed("No space left on device")
        direction.pump(from: ScriptedSource(bytes), to: sink, budget: .max)
        #expect(direction.sinkClosed && direction.writeFailure == "No space left on device")
    }

    @Test func offerWritesStraightThroughWhenNothingWaits() {
        let direction = RelayDirection(chunkSize: 1000)
        let sink = ScriptedSink()
        let taken = bytes.withUnsafeBytes { direction.offer($0, to: sink) }
        #expect(taken == bytes.count && sink.received == bytes && direction.bytesMoved == bytes.count)
    }

    @Test func offerTakesNothingWhileBytesWaitSoOrderIsKept() {
        let direction = RelayDirection(chunkSize: 1000)
        let sink = ScriptedSink(accepts: 10)
        direction.prepend([9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9])
        direction.flush(to: sink)
        #expect(direction.hasPending)
        let taken = bytes.withUnsafeBytes { direction.offer($0, to: sink) }
        #expect(taken == 0 && direction.sourceReady)
    }

    @Test func offerStopsAtAPartialWrite() {
        let direction = RelayDirection(chunkSize: 1000)
        let sink = ScriptedSink(accepts: 100)
        let taken = bytes.withUnsafeBytes { direction.offer($0, to: sink) }
        #expect(taken == 100 && !direction.sinkReady && direction.sourceReady)
    }

    @Test func prependedBytesGoFirst() {
        let direction = RelayDirection(chunkSize: 1000)
        let sink = ScriptedSink()
        direction.prepend([1, 2, 3])
        direction.pump(from: ScriptedSource([4, 5]), to: sink, budget: .max)
        #expect(sink.received == [1, 2, 3, 4, 5])
    }
}

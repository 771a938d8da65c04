/// What one read from a relay source got.
public enum RelayRead: Sendable, Equatable {
    /// This many bytes (more than 0).
    case bytes(Int)
    /// Nothing now; wait for readiness.
    case wouldBlock
    /// End of stream: everything the source will ever give has been read.
    case end
    /// The source failed; the text says why (for the log).
    case failed(String)
}

/// What one write to a relay sink did.
public enum RelayWrite: Sendable, Equatable {
    /// This many bytes were taken (possibly fewer than offered, or 0 while re-keying).
    case bytes(Int)
    /// Nothing now; wait for writability.
    case wouldBlock
    /// The sink stopped reading for good (EPIPE, ECONNRESET): drop the rest, quietly.
    case closed
    /// The sink failed; the text says why (for the log).
    case failed(String)
}

/// Where a relay direction reads from: a socket, a pipe, libssh's buffer of a channel.
public protocol RelaySource: AnyObject {
    /// Reads up to `buffer.count` bytes into `buffer`.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> RelayRead
}

/// Where a relay direction writes to: a socket, a pipe, an SSH channel (data or extended data).
public protocol RelaySink: AnyObject {
    /// The most one write may take now: an SSH channel's window; `Int.max` for descriptors.
    var room: Int { get }
    /// Writes from `bytes`.
    func write(_ bytes: UnsafeRawBufferPointer) -> RelayWrite
}

/// One direction of a byte relay: from a source to a sink through one reusable
/// buffer (`ByteQueue`). It reads only while the sink can take the bytes (so
/// backpressure reaches the source), moves at most a budget per call (so one busy
/// stream cannot starve others on its thread), and records the source's end and
/// the sink's failure for the channel's state machine.
///
/// The owner sets `sourceReady` and `sinkReady` from readiness events and runs
/// `pump`; a push source (libssh's data callback) hands bytes to `offer` instead.
public final class RelayDirection {
    /// The buffer between source and sink.
    public let queue: ByteQueue
    /// The largest single read, in bytes.
    public let chunkSize: Int
    /// The source may have bytes (cleared on would-block; set again by a readiness event).
    public var sourceReady = true
    /// The sink may take bytes (cleared when it took fewer than offered; set again by a readiness event).
    public var sinkReady = true
    /// The source is not to be read now (coalescing: its bytes wait for more),
    /// unless it has ended.
    public var held = false
    /// The source ended (end of stream, or a read failure).
    public private(set) var sourceEnded = false
    /// The sink is gone for good (closed or failed); later bytes are dropped.
    public private(set) var sinkClosed = false
    /// The first failure, read or write, as the log gives it.
    public private(set) var readFailure: String?
    public private(set) var writeFailure: String?
    /// Bytes written to the sink so far.
    public private(set) var bytesMoved = 0

    /// A direction whose reads are at most `chunkSize` bytes (its buffer's capacity).
    public init(chunkSize: Int) {
        self.chunkSize = chunkSize
        self.queue = ByteQueue(capacity: chunkSize)
    }

    /// True once the source ended and every byte it gave reached the sink (or was dropped with it).
    public var isDelivered: Bool { sourceEnded && queue.isEmpty }

    /// True while bytes wait in the buffer.
    public var hasPending: Bool { !queue.isEmpty }

    /// Moves bytes: first what waits in the buffer, then reads of at most
    /// `min(sink.room, chunkSize, budget left)` while the source has bytes and
    /// the sink takes them all. Returns true when it stopped on the budget with
    /// the source still ready (run it again soon).
    @discardableResult
    public func pump(from source: RelaySource, to sink: RelaySink, budget: Int) -> Bool {
        guard flush(to: sink) else { return false }
        var moved = 0
        while moved < budget, sourceReady, !sourceEnded, !sinkClosed, !held {
            let room = sink.room
            guard room > 0 else {
                sinkReady = false
                return false
            }
            var result = RelayRead.wouldBlock
            queue.fill(upTo: min(room, chunkSize, budget - moved)) { buffer in
                result = source.read(into: buffer)
                if case .bytes(let n) = result { return n }
                return 0
            }
            switch result {
            case .bytes(let n):
                moved += n
                guard flush(to: sink) else { return false }
            case .wouldBlock:
                sourceReady = false
                return false
            case .end:
                sourceEnded = true
                return false
            case .failed(let why):
                if readFailure == nil { readFailure = why }
                sourceEnded = true
                return false
            }
        }
        return moved >= budget && sourceReady && !sourceEnded && !sinkClosed && !held
    }

    /// Writes what waits in the buffer; true when it is empty.
    @discardableResult
    public func flush(to sink: RelaySink) -> Bool {
        while !queue.isEmpty {
            if sinkClosed {
                queue.clear()
                return true
            }
            let room = sink.room
            guard room > 0 else {
                sinkReady = false
                return false
            }
            let offered = min(queue.count, room)
            var outcome = RelayWrite.bytes(0)
            let n = queue.drain(limit: room) { buffer in
                outcome = sink.write(buffer)
                if case .bytes(let n) = outcome { return n }
                return 0
            }
            switch outcome {
            case .bytes:
                bytesMoved += max(n, 0)
                if n < offered {
                    sinkReady = false
                    return false
                }
            case .wouldBlock:
                sinkReady = false
                return false
            case .closed:
                closeSink(failure: nil)
            case .failed(let why):
                closeSink(failure: why)
            }
        }
        return true
    }

    /// Push path: the source (libssh's data callback) offers `bytes`; when the
    /// buffer is empty and the sink is ready they are written straight from the
    /// caller's memory. Returns how many were taken; the caller keeps the rest
    /// (and marks the source ready, so `pump` reads them later). Bytes offered
    /// after the sink closed are taken and dropped.
    public func offer(_ bytes: UnsafeRawBufferPointer, to sink: RelaySink) -> Int {
        if sinkClosed { return bytes.count }
        guard queue.isEmpty, sinkReady, !bytes.isEmpty else {
            sourceReady = true
            return 0
        }
        switch sink.write(bytes) {
        case .bytes(let n):
            bytesMoved += n
            if n < bytes.count {
                sinkReady = false
                sourceReady = true
            }
            return n
        case .wouldBlock:
            sinkReady = false
            sourceReady = true
            return 0
        case .closed:
            closeSink(failure: nil)
            return bytes.count
        case .failed(let why):
            closeSink(failure: why)
            return bytes.count
        }
    }

    /// The source ended outside `pump` (a push source's end, or the owner gave up on it).
    public func endSource() {
        sourceEnded = true
    }

    /// The sink is gone (a write failed, or the owner gave up on it): drop what waits.
    public func closeSink(failure: String?) {
        sinkClosed = true
        if writeFailure == nil, let failure { writeFailure = failure }
        queue.clear()
    }

    /// Queues `bytes` (an answer or a preamble) to go before anything the source gives.
    public func prepend(_ bytes: [UInt8]) {
        queue.set(bytes)
    }
}

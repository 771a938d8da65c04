/// An SSH session's socket read in large pieces and handed to libssh's packet
/// reader in the steps libssh itself would use.
///
/// libssh 0.10.6 reads its socket 4,096 bytes per poll (socket.c
/// `ssh_socket_pollcallback`, `MAX_BUF_SIZE`), so an upload costs a poll(2) and a
/// recv(2) per 4 KiB. A feed reads up to `readSize` bytes per recv(2) into one
/// buffer (one per worker thread, not per connection) and offers them to the
/// reader `readerStep` new bytes at a time, calling it again while it consumes:
/// exactly the calls libssh's own loop makes over its own reads, so the
/// reader's work per call, and its recursion over the packets one call holds
/// (packet.c `ssh_packet_socket_callback` calls itself for the next packet),
/// stay as bounded as with libssh's reads. What the reader leaves (part of a
/// packet) goes back to libssh at the end of the run, so between runs libssh
/// holds all unparsed input and may read the socket itself.
///
/// The I/O is the caller's (closures), so the algorithm is tested without
/// sockets or libssh.
public final class SessionInputFeed {
    /// New bytes offered to the reader per step: libssh's own read size.
    public static let readerStep = 4096

    /// The buffer's size; at least a largest packet (libssh's `MAX_PACKET_LEN`,
    /// 262,144 bytes, plus its MAC) more than `readSize`.
    public let capacity: Int
    /// The largest single read of the socket.
    public let readSize: Int
    private var storage: UnsafeMutableRawBufferPointer?

    /// A feed with a `capacity`-byte buffer (allocated at first use) and reads
    /// of at most `readSize` bytes.
    public init(capacity: Int, readSize: Int) {
        precondition(readSize > 0 && capacity > readSize, "SessionInputFeed needs room beyond one read")
        self.capacity = capacity
        self.readSize = readSize
    }

    deinit { storage?.deallocate() }

    /// How a run ended.
    public enum Outcome: Sendable, Equatable {
        /// The reader could not be used (libssh's layout unverified, or what it
        /// buffered does not fit): nothing was read, libssh reads as usual.
        case unavailable
        /// The socket had nothing more for now (a read would block).
        case drained
        /// `budget` bytes were read; the socket may hold more.
        case budgetSpent
        /// The socket reached its end or failed: libssh's own read will see it.
        case ended
        /// The reader stopped taking input (the session failed or closed).
        case readerStopped
        /// The unparsed rest could not be given back to libssh: the session's
        /// input is out of order and the session must end.
        case lost
    }

    /// What one run did.
    public struct Run: Sendable, Equatable {
        public var outcome: Outcome
        /// Bytes read from the socket.
        public var bytesRead: Int
        /// Bytes the reader consumed (including what libssh had buffered).
        public var bytesParsed: Int
    }

    /// Reads and parses until the socket has nothing more, `budget` bytes were
    /// read, or the reader or the socket stops.
    ///
    /// - Parameters:
    ///   - take: moves libssh's unparsed input into the buffer it is given and
    ///     returns its length, or nil when the reader cannot be used.
    ///   - read: one read of the socket.
    ///   - parse: offers bytes to the reader; returns how many it consumed
    ///     (from the start), or nil when it stopped taking input.
    ///   - giveBack: returns the unparsed rest to libssh; false if that failed.
    public func run(
        budget: Int,
        take: (UnsafeMutableRawBufferPointer) -> Int?,
        read: (UnsafeMutableRawBufferPointer) -> RelayRead,
        parse: (UnsafeRawBufferPointer) -> Int?,
        giveBack: (UnsafeRawBufferPointer) -> Bool
    ) -> Run {
        let buffer = storage ?? .allocate(byteCount: capacity, alignment: 16)
        storage = buffer
        guard let held = take(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(capacity - readSize)])),
            held >= 0, held <= capacity - readSize
        else {
            return Run(outcome: .unavailable, bytesRead: 0, bytesParsed: 0)
        }
        // [start, end) is unparsed; [start, offered) the reader has seen.
        var start = 0
        var end = held
        var offered = held
        var run = Run(outcome: .drained, bytesRead: 0, bytesParsed: 0)
        /// Offers what the reader has not seen, a step at a time; false when it stopped.
        func offerNewBytes() -> Bool {
            while offered < end {
                offered = min(end, offered + Self.readerStep)
                while start < offered {
                    guard let n = parse(UnsafeRawBufferPointer(rebasing: buffer[start..<offered])) else { return false }
                    if n <= 0 { break }
                    let taken = min(n, offered - start)
                    start += taken
                    run.bytesParsed += taken
                }
            }
            return true
        }
        // Reads continue until one would block, even after a short one: what
        // the peer sent right behind (an EOF, then more data) is parsed in the
        // same run, before the channels act on the first part, as with
        // libssh's own reads (which poll again until nothing is ready).
        feeding: while true {
            guard offerNewBytes() else {
                run.outcome = .readerStopped
                break
            }
            if run.bytesRead >= budget {
                run.outcome = .budgetSpent
                break
            }
            if start > 0 {
                if start < end { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: end - start) }
                end -= start
                offered -= start
                start = 0
            }
            let room = min(readSize, capacity - end)
            guard room > 0 else {
                // Only a packet larger than the buffer could fill it: leave it to libssh.
                run.outcome = .budgetSpent
                break
            }
            switch read(UnsafeMutableRawBufferPointer(rebasing: buffer[end..<(end + room)])) {
            case .bytes(let n):
                let got = max(0, min(n, room))
                end += got
                run.bytesRead += got
            case .wouldBlock:
                run.outcome = .drained
                break feeding
            case .end, .failed:
                run.outcome = .ended
                break feeding
            }
        }
        if start < end, !giveBack(UnsafeRawBufferPointer(rebasing: buffer[start..<end])), run.outcome != .readerStopped {
            run.outcome = .lost
        }
        return run
    }
}

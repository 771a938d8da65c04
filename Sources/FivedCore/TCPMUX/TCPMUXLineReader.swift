/// Collects the request line of a TCPMUX connection from bytes as they arrive:
/// the line ends at CRLF (a bare LF is accepted too) and may hold at most
/// `TCPMUXRequest.maximumLineLength` bytes before it. Bytes after the line end
/// belong to the service and are handed back untouched.
public struct TCPMUXLineReader: Sendable {
    /// What the reader knows after a `feed`.
    public enum Outcome: Sendable, Equatable {
        /// No line end yet; feed more.
        case needMore
        /// The line is complete; `remainder` is what followed its line end.
        case complete(TCPMUXRequest, remainder: [UInt8])
        /// More than the allowed bytes arrived without a line end.
        case tooLong
    }

    private var buffer: [UInt8] = []
    private var finished: Outcome? = nil

    /// A reader that has seen nothing.
    public init() {}

    /// Adds `bytes`. Once the reader has answered `complete` or `tooLong` it
    /// keeps that answer, and ignores further bytes.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> Outcome {
        if let finished { return finished }
        let limit = TCPMUXRequest.maximumLineLength
        for (offset, byte) in bytes.enumerated() {
            if byte == UInt8(ascii: "\n") {
                var line = buffer
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                let outcome = Outcome.complete(TCPMUXRequest(line: line), remainder: Array(bytes.dropFirst(offset + 1)))
                buffer = []
                finished = outcome
                return outcome
            }
            buffer.append(byte)
            // One byte beyond the limit may still be the CR of a CRLF.
            if buffer.count > limit + 1 || (buffer.count == limit + 1 && byte != UInt8(ascii: "\r")) {
                buffer = []
                finished = .tooLong
                return .tooLong
            }
        }
        return .needMore
    }
}

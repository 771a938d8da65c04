/// Turns a service's stderr stream into log lines: split at LF, and at
/// `maximumLine` bytes for a line that goes on (so one line cannot grow without
/// bound). No byte is lost: a 1,030-byte line comes out as 1,024 + 6 bytes.
public struct StderrLineSplitter: Sendable {
    /// The longest piece one log line carries, in bytes.
    public static let maximumLine = 1024

    private var line: [UInt8] = []

    public init() {}

    /// True while part of a line waits for its end.
    public var hasPartialLine: Bool { !line.isEmpty }

    /// Feeds bytes; `emit` is called for every complete line (without its LF) and
    /// for every `maximumLine` bytes of a longer one. Empty lines are not emitted.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: ([UInt8]) -> Void) {
        for byte in bytes {
            if byte == 0x0A {
                flush(emit: emit)
                continue
            }
            if line.count == Self.maximumLine { flush(emit: emit) }
            line.append(byte)
        }
    }

    /// Emits what is left (at the end of the stream).
    public mutating func flush(emit: ([UInt8]) -> Void) {
        guard !line.isEmpty else { return }
        emit(line)
        line.removeAll(keepingCapacity: true)
    }
}

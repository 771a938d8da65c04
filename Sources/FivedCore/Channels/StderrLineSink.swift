/// A service's stderr as a relay sink that turns it into log lines (split by
/// `StderrLineSplitter`): `emit` gets each line; `flush()` the last, unterminated one.
public final class StderrLineSink: RelaySink {
    private var splitter = StderrLineSplitter()
    private let emit: ([UInt8]) -> Void

    public init(emit: @escaping ([UInt8]) -> Void) {
        self.emit = emit
    }

    public var room: Int { .max }

    public func write(_ bytes: UnsafeRawBufferPointer) -> RelayWrite {
        splitter.feed(bytes, emit: emit)
        return .bytes(bytes.count)
    }

    /// Emits what is left of the last line.
    public func flush() {
        splitter.flush(emit: emit)
    }
}

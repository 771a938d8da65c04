/// Reads SSH wire-format fields (RFC 4251 §5) from a byte array without trapping:
/// every read that would run past the end returns nil.
struct WireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// True once every byte has been consumed.
    var isAtEnd: Bool { offset == bytes.count }

    /// A big-endian uint32.
    mutating func uint32() -> UInt32? {
        guard bytes.count - offset >= 4 else { return nil }
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return v
    }

    /// A length-prefixed string; nil when the length runs past the end.
    mutating func string() -> [UInt8]? {
        let start = offset
        guard let length = uint32(), UInt64(length) <= UInt64(bytes.count - offset) else {
            offset = start
            return nil
        }
        let end = offset + Int(length)
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
}

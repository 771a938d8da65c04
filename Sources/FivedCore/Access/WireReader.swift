/// Reads SSH wire-format fields (RFC 4251 §5) from a byte array without trapping:
/// every read that would run past the end returns nil and consumes nothing.
struct WireReader {
    private let bytes: [UInt8]
    /// Bytes consumed so far.
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// True once every byte has been consumed.
    var isAtEnd: Bool { offset == bytes.count }

    /// Bytes not yet consumed.
    var remaining: Int { bytes.count - offset }

    /// One byte (RFC 4251 `byte`, also `boolean`).
    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A big-endian uint32.
    mutating func uint32() -> UInt32? { bigEndian() }

    /// A big-endian uint64.
    mutating func uint64() -> UInt64? { bigEndian() }

    /// A big-endian unsigned integer of `Value`'s width.
    private mutating func bigEndian<Value: FixedWidthInteger & UnsignedInteger>() -> Value? {
        let width = Value.bitWidth / 8
        guard bytes.count - offset >= width else { return nil }
        var v: Value = 0
        for i in 0..<width { v = v << 8 | Value(bytes[offset + i]) }
        offset += width
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

    /// A length-prefixed string that OpenSSH reads as a C string
    /// (`sshbuf_get_cstring`): nil when it runs past the end or holds a NUL byte.
    mutating func cString() -> [UInt8]? {
        let start = offset
        guard let s = string() else { return nil }
        guard !s.contains(0) else {
            offset = start
            return nil
        }
        return s
    }
}

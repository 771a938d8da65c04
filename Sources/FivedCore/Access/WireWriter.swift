/// Builds SSH wire-format fields (RFC 4251 §5): the inverse of `WireReader`, for
/// re-encoding a key found inside a certificate as a plain key blob.
struct WireWriter {
    private(set) var bytes: [UInt8] = []

    /// A big-endian uint32.
    mutating func uint32(_ v: UInt32) {
        bytes += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    /// A big-endian uint64.
    mutating func uint64(_ v: UInt64) {
        uint32(UInt32(v >> 32))
        uint32(UInt32(v & 0xFFFF_FFFF))
    }

    /// One byte (RFC 4251 `byte`, also `boolean`).
    mutating func byte(_ v: UInt8) { bytes.append(v) }

    /// A length-prefixed string. Callers bound their input far below 4 GiB.
    mutating func string(_ s: some Collection<UInt8>) {
        uint32(UInt32(truncatingIfNeeded: s.count))
        bytes += s
    }

    /// A length-prefixed UTF-8 string.
    mutating func string(_ s: String) { string(Array(s.utf8)) }
}

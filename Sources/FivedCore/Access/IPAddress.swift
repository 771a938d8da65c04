#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A numeric IPv4 or IPv6 address, as fived sees a client or listener address.
///
/// Parsing is strict (`inet_pton`): dotted-quad IPv4 only, no host names, no
/// IPv6 scope ids, and brackets (`[::1]`) are accepted around IPv6. An
/// IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) becomes the IPv4 address, as sshd
/// normalises its peer address, so that `from="10.0.0.0/8"` and PROXY headers see
/// one family.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// Four bytes, network order.
    case v4([UInt8])
    /// Sixteen bytes, network order; never an IPv4-mapped address.
    case v6([UInt8])

    /// Parses numeric `text`; nil when it is not an IPv4 or IPv6 address.
    public init?(_ text: some StringProtocol) {
        var s = String(text)
        if s.hasPrefix("["), s.hasSuffix("]"), s.utf8.count >= 2 {
            s = String(s.dropFirst().dropLast())
        }
        // INET6_ADDRSTRLEN is 46; anything longer is not an address.
        guard !s.isEmpty, s.utf8.count < 64, !s.utf8.contains(0) else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 {
            self.init(v6Bytes: withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        return nil
    }

    /// Builds an address from 4 or 16 raw bytes (IPv4-mapped IPv6 becomes IPv4);
    /// nil for any other length.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = .v4(bytes)
        case 16: self.init(v6Bytes: bytes)
        default: return nil
        }
    }

    private init(v6Bytes b: [UInt8]) {
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
            self = .v4(Array(b[12..<16]))
        } else {
            self = .v6(b)
        }
    }

    /// The raw address bytes (4 or 16).
    public var bytes: [UInt8] {
        switch self {
        case .v4(let b), .v6(let b): return b
        }
    }

    /// This address as IPv6: IPv4 becomes `::ffff:a.b.c.d`, IPv6 is unchanged.
    public var mappedToV6: [UInt8] {
        switch self {
        case .v4(let b): return Array(repeating: 0, count: 10) + [0xFF, 0xFF] + b
        case .v6(let b): return b
        }
    }

    /// The canonical text form (`inet_ntop`): `10.0.0.1`, `2001:db8::1`.
    public var description: String {
        switch self {
        case .v4(let b):
            return b.map(String.init).joined(separator: ".")
        case .v6(let b):
            var addr = in6_addr()
            withUnsafeMutableBytes(of: &addr) { raw in
                for i in 0..<16 { raw[i] = b[i] }
            }
            var buffer = [CChar](repeating: 0, count: 64)
            guard inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count)) != nil else {
                return b.map { String($0, radix: 16) }.joined(separator: ":")
            }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

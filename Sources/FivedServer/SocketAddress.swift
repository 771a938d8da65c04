import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// An IP address and port as text, for logs, policy and the identity hand-off.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// The numeric address without brackets ("127.0.0.1", "::1"); IPv4-mapped IPv6
    /// addresses are shown as IPv4.
    public var address: String
    public var port: UInt16

    public var description: String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// Reads a `sockaddr_storage` (AF_INET or AF_INET6).
    init?(_ storage: sockaddr_storage) {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            let (addr, port): (in_addr, UInt16) = withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ($0.pointee.sin_addr, $0.pointee.sin_port) }
            }
            var a = addr
            var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            guard inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count)) != nil else { return nil }
            self.address = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            self.port = UInt16(bigEndian: port)
        case AF_INET6:
            let (addr, port): (in6_addr, UInt16) = withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { ($0.pointee.sin6_addr, $0.pointee.sin6_port) }
            }
            var a = addr
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count)) != nil else { return nil }
            var text = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("::ffff:"), text.contains(".") { text.removeFirst("::ffff:".count) }
            self.address = text
            self.port = UInt16(bigEndian: port)
        default:
            return nil
        }
    }

    /// The peer of a connected socket.
    static func peer(of fd: Int32) -> Endpoint? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        }
        return rc == 0 ? Endpoint(storage) : nil
    }

    /// The local address of a socket.
    static func local(of fd: Int32) -> Endpoint? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return rc == 0 ? Endpoint(storage) : nil
    }
}

/// Resolves HOST:PORT (numeric or a name such as "localhost") to socket addresses.
enum AddressResolver {
    static func resolve(host: String, port: UInt16, passive: Bool) throws(SystemError) -> [(family: Int32, storage: sockaddr_storage, length: socklen_t)] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw SystemError("getaddrinfo", errno: EINVAL, subject: "\(host) (\(String(cString: gai_strerror(rc))))")
        }
        defer { freeaddrinfo(first) }
        var out: [(Int32, sockaddr_storage, socklen_t)] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: ai.pointee.ai_addr, count: Int(ai.pointee.ai_addrlen)))
            }
            out.append((ai.pointee.ai_family, storage, ai.pointee.ai_addrlen))
            cursor = ai.pointee.ai_next
        }
        return out
    }
}

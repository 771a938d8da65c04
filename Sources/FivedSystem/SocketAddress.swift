import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// An IP address and port as text, for logs, policy and the identity hand-off.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// The numeric address without brackets ("127.0.0.1", "::1"); an IPv4-mapped
    /// IPv6 address (`::ffff:192.0.2.1`) is given as the IPv4 address it maps.
    public var address: String
    public var port: UInt16

    public init(address: String, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `ADDRESS:PORT`, with brackets around IPv6 addresses.
    public var description: String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// The peer of a connected socket.
    public static func peer(of fd: Int32) -> Endpoint? {
        SocketAddress.peer(of: fd)?.endpoint
    }

    /// The local address of a socket.
    public static func local(of fd: Int32) -> Endpoint? {
        SocketAddress.local(of: fd)?.endpoint
    }
}

/// A socket address ready for bind(2), connect(2) or accept(2): IPv4, IPv6 or a
/// Unix socket path. The one place fived reads and writes `sockaddr` structures.
public struct SocketAddress: Sendable, CustomStringConvertible {
    public var storage = sockaddr_storage()
    public var length: socklen_t = 0

    public init() {}

    public var family: Int32 { Int32(storage.ss_family) }

    /// The IP address and port (IPv4-mapped IPv6 unmapped); nil for other families.
    public var endpoint: Endpoint? {
        var s = storage
        switch family {
        case AF_INET:
            let (addr, port): (in_addr, UInt16) = withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ($0.pointee.sin_addr, $0.pointee.sin_port) }
            }
            guard let text = Self.text(family: AF_INET, addr) else { return nil }
            return Endpoint(address: text, port: UInt16(bigEndian: port))
        case AF_INET6:
            let (addr, port): (in6_addr, UInt16) = withUnsafePointer(to: &s) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { ($0.pointee.sin6_addr, $0.pointee.sin6_port) }
            }
            guard var text = Self.text(family: AF_INET6, addr) else { return nil }
            if text.hasPrefix("::ffff:"), text.contains(".") { text.removeFirst("::ffff:".count) }
            return Endpoint(address: text, port: UInt16(bigEndian: port))
        default:
            return nil
        }
    }

    private static func text<A>(family: Int32, _ addr: A) -> String? {
        var a = addr
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        guard inet_ntop(family, &a, &buf, socklen_t(buf.count)) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The Unix socket path, for AF_UNIX addresses.
    public var path: String? {
        guard family == AF_UNIX else { return nil }
        var s = storage
        return withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { sun in
                withUnsafeBytes(of: sun.pointee.sun_path) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
            }
        }
    }

    public var description: String {
        if let endpoint { return endpoint.description }
        if let path { return path }
        return "(family \(family))"
    }

    /// A Unix socket address; throws ENAMETOOLONG for a path that does not fit.
    public static func unix(path: String) throws(SystemError) -> SocketAddress {
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: sun.sun_path), !bytes.contains(0) else {
            throw SystemError("bind", errno: ENAMETOOLONG, subject: path)
        }
        withUnsafeMutableBytes(of: &sun.sun_path) { $0.copyBytes(from: bytes) }
        var a = SocketAddress()
        withUnsafeMutableBytes(of: &a.storage) { dst in withUnsafeBytes(of: &sun) { dst.copyMemory(from: $0) } }
        a.length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return a
    }

    /// Resolves `host` (numeric or a name such as "localhost") and `port` for
    /// TCP: the addresses in getaddrinfo's order. `passive` asks for addresses to
    /// bind to (AI_PASSIVE).
    public static func resolve(host: String, port: UInt16, passive: Bool) throws(SystemError) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let list else {
            throw SystemError("getaddrinfo", errno: 0, subject: host, detail: rc == 0 ? "no address" : String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var out: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let ai = cursor {
            var a = SocketAddress()
            let count = min(Int(ai.pointee.ai_addrlen), MemoryLayout<sockaddr_storage>.size)
            withUnsafeMutableBytes(of: &a.storage) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: ai.pointee.ai_addr, count: count))
            }
            a.length = socklen_t(count)
            out.append(a)
            cursor = ai.pointee.ai_next
        }
        return out
    }

    /// The peer of a connected socket (getpeername).
    public static func peer(of fd: Int32) -> SocketAddress? {
        read { getpeername(fd, $0, $1) }
    }

    /// The local address of a socket (getsockname).
    public static func local(of fd: Int32) -> SocketAddress? {
        read { getsockname(fd, $0, $1) }
    }

    private static func read(_ call: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> SocketAddress? {
        var a = SocketAddress()
        a.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &a.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, &a.length) }
        }
        return rc == 0 ? a : nil
    }

    /// Lends the address as a `sockaddr` pointer and its length.
    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var s = storage
        return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}

import CSystem
import FivedCore
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket for one configured address.
struct Listener {
    let fd: Int32
    let address: Endpoint

    /// Binds and listens (non-blocking, close-on-exec, SO_REUSEADDR; IPv6 sockets
    /// are v6-only so "0.0.0.0:1" and "[::]:1" can both be bound).
    static func open(_ listen: ListenAddress, backlog: Int32 = 1024) throws(SystemError) -> [Listener] {
        let resolved = try AddressResolver.resolve(host: listen.host, port: listen.port, passive: true)
        var out: [Listener] = []
        var lastError: SystemError?
        for a in resolved {
            let fd = socket(a.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = SystemError("socket", errno: errno, subject: ""); continue }
            Sys.setSocketOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            if a.family == AF_INET6 { Sys.setSocketOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
            var storage = a.storage
            let rc = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, a.length) }
            }
            guard rc == 0 else {
                lastError = SystemError("bind", errno: errno, subject: "")
                Sys.close(fd)
                continue
            }
            guard Glibc.listen(fd, backlog) == 0 else {
                lastError = SystemError("listen", errno: errno, subject: "")
                Sys.close(fd)
                continue
            }
            out.append(Listener(fd: fd, address: Endpoint.local(of: fd) ?? Endpoint(address: listen.host, port: listen.port)))
            // A name such as "localhost" may resolve to several addresses; with port 0
            // each would get its own port, so keep only the first.
            if listen.port == 0 { break }
        }
        if out.isEmpty { throw lastError ?? SystemError("bind", errno: EADDRNOTAVAIL, subject: "") }
        return out
    }
}

extension Endpoint {
    init(address: String, port: UInt16) {
        self.address = address
        self.port = port
    }
}

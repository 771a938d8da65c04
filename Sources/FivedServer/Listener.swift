import FivedCore
import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket for one configured address.
struct Listener {
    let socket: Descriptor
    let address: Endpoint

    var fd: Int32 { socket.rawValue }

    /// Binds and listens (non-blocking, close-on-exec, SO_REUSEADDR; IPv6 sockets
    /// are v6-only so "0.0.0.0:1" and "[::]:1" can both be bound). A name such as
    /// "localhost" may resolve to several addresses; each gets a listener (with
    /// port 0 only the first, since each would get its own port).
    static func open(_ listen: ListenAddress, backlog: Int32 = 1024) throws(SystemError) -> [Listener] {
        let resolved = try SocketAddress.resolve(host: listen.host, port: listen.port, passive: true)
        var out: [Listener] = []
        var lastError: SystemError?
        for address in resolved {
            do {
                let socket = try Socket.listen(address, backlog: backlog)
                out.append(Listener(socket: socket, address: Endpoint.local(of: socket.rawValue) ?? Endpoint(address: listen.host, port: listen.port)))
            } catch {
                lastError = error
                continue
            }
            if listen.port == 0 { break }
        }
        if out.isEmpty { throw lastError ?? SystemError("bind", errno: EADDRNOTAVAIL, subject: "\(listen)") }
        return out
    }
}

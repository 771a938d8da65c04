import FivedCore
import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// Local sockets: listeners for `-L`, outgoing connections for `-R`.
enum LocalSockets {
    /// A listening socket for a `-L` bind; returns it and the address actually
    /// bound (port 0 becomes the kernel's choice).
    static func listen(_ bind: LocalSocket) throws(SystemError) -> (socket: Descriptor, shown: String) {
        switch bind {
        case .tcp(let host, let port):
            var lastError = SystemError("bind", errno: EADDRNOTAVAIL, subject: "\(bind)")
            for address in try SocketAddress.resolve(host: host, port: port, passive: true) {
                do {
                    let socket = try Socket.listen(address, backlog: 128)
                    return (socket, "\(host == "0.0.0.0" ? "*" : host):\(Socket.boundPort(socket.rawValue))")
                } catch {
                    lastError = SystemError("bind", errno: error.errno, subject: "\(bind)")
                }
            }
            throw lastError
        case .unix(let path):
            let address = try SocketAddress.unix(path: path)
            removeStaleSocket(path)
            do {
                return (try Socket.listen(address, backlog: 128), path)
            } catch {
                throw SystemError("bind", errno: error.errno, subject: path)
            }
        }
    }

    /// A socket file left by an earlier run that nobody answers on is removed;
    /// a live one is left alone (bind then fails with "address in use").
    static func removeStaleSocket(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK, let address = try? SocketAddress.unix(path: path),
            let probe = try? Socket.stream(family: AF_UNIX)
        else { return }
        do {
            _ = try Socket.connect(probe.rawValue, to: address)
        } catch {
            if error.errno == ECONNREFUSED { unlink(path) }
        }
    }

    /// Accepts one connection (non-blocking, close-on-exec); nil when none is waiting.
    /// Returns the peer as text and port for the channel's originator fields.
    static func accept(_ listener: Int32) -> (socket: Descriptor, host: String, port: UInt16)? {
        guard let (socket, peer) = (try? Socket.accept(listener, nonBlocking: true)) ?? nil else { return nil }
        let endpoint = peer.endpoint ?? Endpoint(address: "127.0.0.1", port: 0)
        return (socket, endpoint.address, endpoint.port)
    }

    /// Starts a non-blocking connect to a `-R` target. Returns the socket and
    /// whether the connection is already complete; throws when it failed at once.
    static func connect(_ target: LocalSocket) throws(SystemError) -> (socket: Descriptor, done: Bool) {
        let addresses: [SocketAddress]
        switch target {
        case .tcp(let host, let port): addresses = try SocketAddress.resolve(host: host, port: port, passive: false)
        case .unix(let path): addresses = [try SocketAddress.unix(path: path)]
        }
        var lastError = SystemError("connect", errno: ECONNREFUSED, subject: "\(target)")
        for address in addresses {
            let socket = try Socket.stream(family: address.family)
            do {
                switch try Socket.connect(socket.rawValue, to: address) {
                case .connected: return (socket, true)
                case .inProgress: return (socket, false)
                }
            } catch {
                lastError = SystemError("connect", errno: error.errno, subject: "\(target)")
            }
        }
        throw lastError
    }
}

import FivedCore
import FivedSystem
import Foundation
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

    /// The listening sockets systemd passed (socket activation, sd_listen_fds(3)):
    /// descriptors 3 to 3 + LISTEN_FDS - 1 when LISTEN_PID is this process,
    /// split by LISTEN_FDNAMES into SSH listeners and those named `tcpmux`. nil
    /// without socket activation. The variables are removed so that no child
    /// takes the sockets for its own. Each must be a listening stream socket.
    static func inherited() throws(SystemError) -> (ssh: [Listener], tcpmux: [Listener])? {
        let environment = ProcessInfo.processInfo.environment
        guard let pid = environment["LISTEN_PID"].flatMap({ pid_t($0) }), pid == getpid() else { return nil }
        // Meant for fived: a count it cannot use is an error, not a reason to bind `listen` instead.
        guard let count = environment["LISTEN_FDS"].flatMap({ Int32($0) }), count > 0, count <= 64 else {
            throw SystemError("socket activation", errno: EINVAL, subject: "LISTEN_FDS=\(environment["LISTEN_FDS"] ?? "") is not 1 to 64")
        }
        let names = environment["LISTEN_FDNAMES"]?.split(separator: ":", omittingEmptySubsequences: false).map(String.init) ?? []
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        var ssh: [Listener] = [], tcpmux: [Listener] = []
        for i in 0..<count {
            let fd = 3 + i
            var accepting: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0, accepting == 1 else {
                throw SystemError("socket activation", errno: ENOTSOCK, subject: "descriptor \(fd) is not a listening socket")
            }
            Syscall.setCloseOnExec(fd)
            try Syscall.setNonBlocking(fd)
            let listener = Listener(socket: Descriptor(fd), address: Endpoint.local(of: fd) ?? Endpoint(address: "?", port: 0))
            if Int(i) < names.count && names[Int(i)] == "tcpmux" { tcpmux.append(listener) } else { ssh.append(listener) }
        }
        return (ssh, tcpmux)
    }
}

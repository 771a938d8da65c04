import FivedCore
#if canImport(Glibc)
import Glibc
#endif

/// Local sockets: listeners for `-L`, outgoing connections for `-R`.
enum Sockets {
    /// A resolved address ready for bind(2) or connect(2).
    struct Address {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var family: Int32 { Int32(storage.ss_family) }
    }

    /// Resolves `host`:`port` (numeric or by name) to its addresses.
    static func resolve(host: String, port: UInt16, passive: Bool) throws(SystemError) -> [Address] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let list else {
            let text = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
            throw SystemError("getaddrinfo", errno: 0, subject: "\(host): \(text)")
        }
        defer { freeaddrinfo(list) }
        var out: [Address] = []
        var p: UnsafeMutablePointer<addrinfo>? = list
        while let ai = p {
            var a = Address()
            withUnsafeMutableBytes(of: &a.storage) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: ai.pointee.ai_addr, count: Int(ai.pointee.ai_addrlen)))
            }
            a.length = ai.pointee.ai_addrlen
            out.append(a)
            p = ai.pointee.ai_next
        }
        return out
    }

    static func unixAddress(_ path: String) throws(SystemError) -> Address {
        var a = Address()
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: sun.sun_path) else {
            throw SystemError("bind", errno: ENAMETOOLONG, subject: path)
        }
        withUnsafeMutableBytes(of: &sun.sun_path) { dst in
            dst.copyBytes(from: bytes)
        }
        withUnsafeMutableBytes(of: &a.storage) { dst in
            withUnsafeBytes(of: &sun) { dst.copyMemory(from: $0) }
        }
        a.length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return a
    }

    private static func socket(family: Int32) throws(SystemError) -> Int32 {
        let fd = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        return fd
    }

    /// A listening socket for a `-L` bind; returns the descriptor and the address
    /// actually bound (port 0 becomes the kernel's choice).
    static func listen(_ bind: LocalBind) throws(SystemError) -> (fd: Int32, shown: String) {
        switch bind {
        case .tcp(let host, let port):
            let addresses = try resolve(host: host, port: port, passive: true)
            var lastError = SystemError("bind", errno: EADDRNOTAVAIL, subject: "\(bind)")
            for var a in addresses {
                let fd = try socket(family: a.family)
                Posix.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
                let ok = withUnsafePointer(to: &a.storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, a.length) == 0 }
                }
                guard ok, Glibc.listen(fd, 128) == 0 else {
                    lastError = SystemError("bind", errno: errno, subject: "\(bind)")
                    Posix.close(fd)
                    continue
                }
                return (fd, "\(host == "0.0.0.0" ? "*" : host):\(boundPort(fd))")
            }
            throw lastError
        case .unix(let path):
            var a = try unixAddress(path)
            removeStaleSocket(path)
            let fd = try socket(family: AF_UNIX)
            let ok = withUnsafePointer(to: &a.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, a.length) == 0 }
            }
            guard ok, Glibc.listen(fd, 128) == 0 else {
                let e = errno
                Posix.close(fd)
                throw SystemError("bind", errno: e, subject: path)
            }
            return (fd, path)
        }
    }

    /// A socket file left by an earlier run that nobody answers on is removed;
    /// a live one is left alone (bind then fails with "address in use").
    static func removeStaleSocket(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK, var a = try? unixAddress(path) else { return }
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { Posix.close(fd) }
        let rc = withUnsafePointer(to: &a.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, a.length) }
        }
        if rc != 0 && errno == ECONNREFUSED { unlink(path) }
    }

    static func boundPort(_ fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        if Int32(storage.ss_family) == AF_INET {
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) } }
        }
        if Int32(storage.ss_family) == AF_INET6 {
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) } }
        }
        return 0
    }

    /// Accepts one connection (non-blocking, close-on-exec); nil when none is waiting.
    /// Returns the peer as text and port for the channel's originator fields.
    static func accept(_ listener: Int32) -> (fd: Int32, host: String, port: UInt16)? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.accept(listener, $0, &len)
                }
            }
            if fd >= 0 {
                Posix.setNonBlocking(fd)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                let (host, port) = describe(&storage)
                return (fd, host, port)
            }
            if errno == EINTR || errno == ECONNABORTED { continue }
            return nil
        }
    }

    static func describe(_ storage: inout sockaddr_storage) -> (String, UInt16) {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                    return (String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), UInt16(bigEndian: sin.pointee.sin_port))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
                    return (String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), UInt16(bigEndian: sin.pointee.sin6_port))
                }
            }
        default:
            return ("127.0.0.1", 0)
        }
    }

    /// Starts a non-blocking connect to a `-R` target. Returns the descriptor and
    /// whether the connection is already complete; throws when it failed at once.
    static func connect(_ target: ForwardTarget) throws(SystemError) -> (fd: Int32, done: Bool) {
        var addresses: [Address]
        switch target {
        case .tcp(let host, let port): addresses = try resolve(host: host, port: port, passive: false)
        case .unix(let path): addresses = [try unixAddress(path)]
        }
        var lastError = SystemError("connect", errno: ECONNREFUSED, subject: "\(target)")
        for i in addresses.indices {
            let fd = try socket(family: addresses[i].family)
            let length = addresses[i].length
            let rc = withUnsafePointer(to: &addresses[i].storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
            }
            if rc == 0 { return (fd, true) }
            let e = errno
            if e == EINPROGRESS || e == EINTR { return (fd, false) }
            lastError = SystemError("connect", errno: e, subject: "\(target)")
            Posix.close(fd)
        }
        throw lastError
    }

    /// The pending error of a non-blocking connect (0 when it succeeded).
    static func connectResult(_ fd: Int32) -> Int32 {
        var value: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len) == 0 else { return errno }
        return value
    }
}


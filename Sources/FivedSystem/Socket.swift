import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// Stream sockets: listening, accepting, non-blocking connects and options.
public enum Socket {
    /// A new non-blocking, close-on-exec stream socket of `family`.
    public static func stream(family: Int32) throws(SystemError) -> Descriptor {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        return Descriptor(try Syscall.retrying("socket") { Glibc.socket(family, type, 0) })
    }

    /// Binds and listens on `address` (SO_REUSEADDR; IPv6 sockets v6-only so that
    /// "0.0.0.0:P" and "[::]:P" can both be bound); non-blocking, close-on-exec.
    public static func listen(_ address: SocketAddress, backlog: Int32) throws(SystemError) -> Descriptor {
        let fd = try stream(family: address.family)
        if address.family != AF_UNIX { setOption(fd.rawValue, SOL_SOCKET, SO_REUSEADDR, 1) }
        if address.family == AF_INET6 { setOption(fd.rawValue, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
        _ = try Syscall.retrying("bind", subject: address.description) { address.withSockaddr { Glibc.bind(fd.rawValue, $0, $1) } }
        _ = try Syscall.retrying("listen", subject: address.description) { Glibc.listen(fd.rawValue, backlog) }
        return fd
    }

    /// Accepts one connection, close-on-exec and (when `nonBlocking`) O_NONBLOCK:
    /// nil when none is waiting. ECONNABORTED (the client gave up) is skipped.
    public static func accept(_ listener: Int32, nonBlocking: Bool) throws(SystemError) -> (Descriptor, SocketAddress)? {
        while true {
            var peer = SocketAddress()
            peer.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let result = try Syscall.nonBlocking("accept4") {
                withUnsafeMutablePointer(to: &peer.storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { fived_accept4(listener, $0, &peer.length, nonBlocking ? 1 : 0) }
                }
            }
            switch result {
            case .wouldBlock: return nil
            case .processed(let fd): return (Descriptor(fd), peer)
            }
        }
    }

    /// How a non-blocking connect went.
    public enum ConnectProgress {
        /// Connected at once (Unix sockets, usually).
        case connected
        /// In progress: poll for writability, then ask `connectResult`.
        case inProgress
    }

    /// Starts a non-blocking connect of `fd` to `address`.
    public static func connect(_ fd: Int32, to address: SocketAddress) throws(SystemError) -> ConnectProgress {
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if rc == 0 { return .connected }
        let e = errno
        if e == EINPROGRESS || e == EINTR || (e == EAGAIN && address.family != AF_UNIX) { return .inProgress }
        // A Unix socket whose listener's backlog is full answers EAGAIN: that is a refusal, not a wait.
        throw SystemError("connect", errno: e == EAGAIN ? ECONNREFUSED : e, subject: address.description)
    }

    /// The outcome of a finished non-blocking connect: 0, or the errno it failed with.
    public static func connectResult(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return errno }
        return err
    }

    /// setsockopt(2) with an int value; failures are ignored (options are tuning, not correctness).
    /// True when `fd` is a SOCK_SEQPACKET socket (getsockopt SO_TYPE).
    public static func isSeqPacket(_ fd: Int32) -> Bool {
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 && type == Int32(SOCK_SEQPACKET.rawValue)
    }

    public static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// SO_SNDTIMEO: how long a blocking send may wait.
    public static func setSendTimeout(_ fd: Int32, seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Bytes waiting in a socket's receive queue (FIONREAD); -1 on error.
    public static func bytesReadable(_ fd: Int32) -> Int {
        Int(fived_bytes_readable(fd))
    }

    /// The port a socket is bound to (after binding port 0), 0 when unknown.
    public static func boundPort(_ fd: Int32) -> UInt16 {
        SocketAddress.local(of: fd)?.endpoint?.port ?? 0
    }
}

import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, on what, and errno's text.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public let subject: String

    public init(_ call: String, errno: Int32, subject: String = "") {
        self.call = call
        self.errno = errno
        self.subject = subject
    }

    public var description: String {
        let text = String(cString: strerror(errno))
        return subject.isEmpty ? "\(call): \(text)" : "\(subject): \(call): \(text)"
    }
}

/// Every syscall fived makes on a descriptor goes through here: errno is read at
/// once and EINTR retried, so callers see either a result or a `SystemError`.
enum Sys {
    /// Runs `body` until it does not fail with EINTR; returns its result or throws.
    @inline(__always)
    static func retrying<T: BinaryInteger>(_ call: String, subject: String = "", _ body: () -> T) throws(SystemError) -> T {
        while true {
            let rc = body()
            if rc >= 0 { return rc }
            let e = errno
            if e == EINTR { continue }
            throw SystemError(call, errno: e, subject: subject)
        }
    }

    /// Like `retrying` but returns nil for EAGAIN/EWOULDBLOCK.
    @inline(__always)
    static func nonBlocking<T: BinaryInteger>(_ call: String, _ body: () -> T) throws(SystemError) -> T? {
        while true {
            let rc = body()
            if rc >= 0 { return rc }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw SystemError(call, errno: e)
        }
    }

    static func setNonBlocking(_ fd: Int32) throws(SystemError) {
        let flags = try retrying("fcntl") { fcntl(fd, F_GETFL) }
        _ = try retrying("fcntl") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    static func setCloseOnExec(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFD)
        if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
    }

    static func setSocketOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Bytes in a socket's receive queue; 0 when none, -1 on error.
    static func bytesReadable(_ fd: Int32) -> Int {
        Int(fived_bytes_readable(fd))
    }

    /// close(2), ignoring EINTR (Linux always releases the descriptor).
    static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }
}

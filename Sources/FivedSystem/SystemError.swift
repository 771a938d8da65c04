#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the system layer: which call failed, on what, and the
/// errno it left. `errno` is the stable, matchable code (EACCES, ECONNREFUSED, ...);
/// `description` is one line a user can act on ("connect 127.0.0.1:8080: Connection refused").
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The system call or library function, e.g. `connect`, `getaddrinfo`.
    public let call: String
    /// errno as the call left it (0 when the failure has no errno, as getaddrinfo's).
    public let errno: Int32
    /// What it was called on (a path, an address), possibly empty.
    public let subject: String
    /// Text that replaces strerror's when errno is 0 (getaddrinfo's gai_strerror, say).
    public let detail: String

    public init(_ call: String, errno: Int32, subject: String = "", detail: String = "") {
        self.call = call
        self.errno = errno
        self.subject = subject
        self.detail = detail
    }

    /// strerror(errno), or `detail` when there is no errno.
    public var reason: String {
        errno == 0 ? detail : String(cString: strerror(errno))
    }

    public var description: String {
        subject.isEmpty ? "\(call): \(reason)" : "\(call) \(subject): \(reason)"
    }

    /// True for EAGAIN/EWOULDBLOCK.
    public var isWouldBlock: Bool { errno == EAGAIN || errno == EWOULDBLOCK }
}

/// strerror(3) as a Swift string.
public func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

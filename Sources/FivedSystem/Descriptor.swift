#if canImport(Glibc)
import Glibc
#endif

/// One open file descriptor, owned: `close()` (or the last reference going away)
/// closes it exactly once, so no `-1` sentinel is ever passed around and no
/// descriptor is closed twice. Callers that register it with a poll set must
/// remove the registration before closing. Sendable because ownership moves
/// between threads (the acceptor hands sockets to workers); one thread at a
/// time uses it.
public final class Descriptor: CustomStringConvertible, @unchecked Sendable {
    /// The descriptor number; valid until `close()`.
    public let rawValue: Int32
    public private(set) var isOpen: Bool

    /// Takes ownership of `rawValue` (which must be open).
    public init(_ rawValue: Int32) {
        self.rawValue = rawValue
        self.isOpen = rawValue >= 0
    }

    deinit {
        if isOpen { Syscall.close(rawValue) }
    }

    /// Closes the descriptor now (a second call does nothing).
    public func close() {
        guard isOpen else { return }
        isOpen = false
        Syscall.close(rawValue)
    }

    /// Gives up ownership without closing (another owner, a child process or libssh, takes it).
    public func release() -> Int32 {
        isOpen = false
        return rawValue
    }

    public var description: String { "fd \(rawValue)" }
}

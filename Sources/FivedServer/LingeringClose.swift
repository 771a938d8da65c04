import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// A socket fived has finished with after writing its last word (a TCPMUX
/// refusal, an SSH disconnect): its write side is shut, and what the peer still
/// sends is read and dropped until the peer closes, for at most
/// `timeoutMilliseconds` and `budget` bytes, then it is closed. Closing at once
/// on unread input makes the kernel send a reset, which discards the last word
/// in the peer's receive queue (Apache's and nginx's "lingering close").
final class LingeringClose {
    static let timeoutMilliseconds: Int64 = 2000
    static let budget = 256 * 1024

    let socket: Descriptor
    let deadline: Int64
    private var left = LingeringClose.budget
    var registration = PollRegistration.none

    /// Shuts the write side of `socket` (sending what was written, then FIN) and starts lingering.
    init(_ socket: Descriptor, now: Int64) {
        self.socket = socket
        self.deadline = now + Self.timeoutMilliseconds
        Syscall.shutdownWrite(socket.rawValue)
    }

    /// Reads and drops what arrived; true when done (the peer closed, an error,
    /// the budget spent or the deadline passed).
    func drain(now: Int64) -> Bool {
        guard now < deadline else { return true }
        var buffer = [UInt8](repeating: 0, count: 16384)
        while left > 0 {
            let result = try? buffer.withUnsafeMutableBytes { try Syscall.recv(socket.rawValue, into: $0) }
            switch result {
            case .processed(let n)? where n > 0: left -= n
            case .wouldBlock?: return false
            default: return true  // EOF or an error
            }
        }
        return true
    }
}

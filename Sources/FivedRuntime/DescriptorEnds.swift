import FivedCore
import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking socket, pipe or terminal as a relay source and sink: recv(2)
/// and send(2) without SIGPIPE on sockets, read(2) and write(2) otherwise. On
/// writes, EPIPE and ECONNRESET mean the reader is gone (`.closed`); on reads, a
/// pty master's EIO means its slave side closed (`.end`).
public final class DescriptorEnd: RelaySource, RelaySink {
    public let fd: Int32
    let isSocket: Bool

    /// An end on `fd` (not owned); `isSocket` is looked up when not given.
    public init(fd: Int32, isSocket: Bool? = nil) {
        self.fd = fd
        self.isSocket = isSocket ?? Syscall.isSocket(fd)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> RelayRead {
        do {
            let result = isSocket ? try Syscall.recv(fd, into: buffer) : try Syscall.read(fd, into: buffer)
            switch result {
            case .wouldBlock: return .wouldBlock
            case .processed(0): return .end
            case .processed(let n): return .bytes(n)
            }
        } catch {
            if error.errno == EIO { return .end }
            return .failed(error.reason)
        }
    }

    public var room: Int { .max }

    public func write(_ bytes: UnsafeRawBufferPointer) -> RelayWrite {
        do {
            let result = isSocket ? try Syscall.send(fd, bytes) : try Syscall.write(fd, bytes)
            switch result {
            case .wouldBlock: return .wouldBlock
            case .processed(let n): return .bytes(n)
            }
        } catch {
            if error.errno == EPIPE || error.errno == ECONNRESET { return .closed }
            return .failed(error.reason)
        }
    }
}

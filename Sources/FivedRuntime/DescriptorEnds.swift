import FivedCore
import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// A non-blocking socket or pipe as a relay source: recv(2) on sockets, read(2) otherwise.
public final class DescriptorSource: RelaySource {
    public let fd: Int32
    let isSocket: Bool

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
            // A pty master reports the end of its slave side as EIO.
            if error.errno == EIO { return .end }
            return .failed(error.reason)
        }
    }
}

/// A non-blocking socket or pipe as a relay sink: send(2) without SIGPIPE on
/// sockets, write(2) otherwise. EPIPE and ECONNRESET mean the reader is gone.
public final class DescriptorSink: RelaySink {
    public let fd: Int32
    let isSocket: Bool

    public init(fd: Int32, isSocket: Bool? = nil) {
        self.fd = fd
        self.isSocket = isSocket ?? Syscall.isSocket(fd)
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

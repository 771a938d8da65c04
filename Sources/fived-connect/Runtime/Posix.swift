#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, on what, and errno's text.
struct SystemError: Error, CustomStringConvertible {
    let call: String
    let errno: Int32
    let subject: String

    init(_ call: String, errno: Int32, subject: String = "") {
        self.call = call
        self.errno = errno
        self.subject = subject
    }

    var description: String {
        if errno == 0 { return subject }
        let text = String(cString: strerror(errno))
        return subject.isEmpty ? "\(call): \(text)" : "\(subject): \(text)"
    }
}

/// The system calls fived-connect makes on descriptors: errno is read at once
/// and EINTR retried.
enum Posix {
    /// Outcome of a non-blocking read or write.
    enum IO {
        case count(Int)
        case wouldBlock
        case failed(Int32)
    }

    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> IO {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return .count(n) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .failed(e)
        }
    }

    /// write(2) that never raises SIGPIPE on sockets (MSG_NOSIGNAL) and works on pipes and files too.
    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, isSocket: Bool) -> IO {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return .count(0) }
        while true {
            let n = isSocket
                ? Glibc.send(fd, base, buffer.count, Int32(MSG_NOSIGNAL))
                : Glibc.write(fd, base, buffer.count)
            if n >= 0 { return .count(n) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .failed(e)
        }
    }

    static func setNonBlocking(_ fd: Int32, _ on: Bool = true) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0 else { return }
        _ = fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK)
    }

    static func isNonBlocking(_ fd: Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        return flags >= 0 && flags & O_NONBLOCK != 0
    }

    static func isSocket(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return st.st_mode & S_IFMT == S_IFSOCK
    }

    static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if need be), so
    /// that no socket opened later lands on them, as ssh does.
    static func sanitizeStandardDescriptors() {
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) < 0 {
            let null = open("/dev/null", O_RDWR)
            if null >= 0 && null != fd {
                _ = dup2(null, fd)
                _ = Glibc.close(null)
            }
        }
    }

    /// A pipe whose both ends are non-blocking and close-on-exec.
    static func pipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw SystemError("pipe", errno: errno) }
        for fd in fds {
            setNonBlocking(fd)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        return (fds[0], fds[1])
    }

    /// Milliseconds on a monotonic clock.
    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// What a non-blocking call did: processed some result, or would have blocked.
public enum IOResult<T: Sendable>: Sendable {
    case processed(T)
    case wouldBlock
}

/// Every system call fived makes goes through here (as swift-nio's
/// `Sources/NIOPosix/System.swift`): errno is read at once, before anything else
/// can change it; EINTR is retried; EAGAIN/EWOULDBLOCK become `.wouldBlock` for
/// the non-blocking form; any other failure is a `SystemError` naming the call.
public enum Syscall {
    /// Runs `body` (a call returning -1 with errno on failure) until it does not
    /// fail with EINTR. Returns its result or throws.
    @inline(__always)
    public static func retrying<T: FixedWidthInteger>(
        _ call: String, subject: @autoclosure () -> String = "", _ body: () -> T
    ) throws(SystemError) -> T {
        while true {
            let rc = body()
            if rc != -1 { return rc }
            let e = Glibc.errno
            if e == EINTR { continue }
            throw SystemError(call, errno: e, subject: subject())
        }
    }

    /// Like `retrying`, but EAGAIN/EWOULDBLOCK is `.wouldBlock`, not an error.
    @inline(__always)
    public static func nonBlocking<T: FixedWidthInteger & Sendable>(
        _ call: String, subject: @autoclosure () -> String = "", _ body: () -> T
    ) throws(SystemError) -> IOResult<T> {
        while true {
            let rc = body()
            if rc != -1 { return .processed(rc) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            throw SystemError(call, errno: e, subject: subject())
        }
    }

    // MARK: Descriptor I/O

    /// read(2) into `buffer`; `.processed(0)` is end of file.
    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// write(2) from `buffer` (pipes, terminals, files).
    @inline(__always)
    public static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return .processed(0) }
        return try nonBlocking("write") { Glibc.write(fd, base, buffer.count) }
    }

    /// send(2) without SIGPIPE and without blocking, whatever the descriptor's mode.
    @inline(__always)
    public static func send(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return .processed(0) }
        return try nonBlocking("send") { Glibc.send(fd, base, buffer.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
    }

    /// recv(2) without blocking; `.processed(0)` is end of stream.
    @inline(__always)
    public static func recv(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("recv") { Glibc.recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }
    }

    /// recv(2) with MSG_PEEK, without blocking: the bytes stay queued for the next
    /// reader; `.processed(0)` is end of stream.
    public static func peek(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("recv") { Glibc.recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) }
    }

    /// shutdown(2) of the write side (a half-close); ENOTCONN (the peer is gone) is not an error.
    public static func shutdownWrite(_ fd: Int32) {
        _ = try? retrying("shutdown") { Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    /// shutdown(2) of the read side.
    public static func shutdownRead(_ fd: Int32) {
        _ = try? retrying("shutdown") { Glibc.shutdown(fd, Int32(SHUT_RD)) }
    }

    // MARK: Descriptor flags

    /// Sets O_NONBLOCK (or clears it).
    public static func setNonBlocking(_ fd: Int32, _ on: Bool = true) throws(SystemError) {
        let flags = try retrying("fcntl") { fcntl(fd, F_GETFL) }
        let wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        if wanted != flags { _ = try retrying("fcntl") { fcntl(fd, F_SETFL, wanted) } }
    }

    /// The O_* status flags of `fd` (F_GETFL), or nil when it is not open.
    public static func statusFlags(_ fd: Int32) -> Int32? {
        try? retrying("fcntl") { fcntl(fd, F_GETFL) }
    }

    /// Restores flags read with `statusFlags`.
    public static func setStatusFlags(_ fd: Int32, _ flags: Int32) {
        _ = try? retrying("fcntl") { fcntl(fd, F_SETFL, flags) }
    }

    /// Sets FD_CLOEXEC.
    public static func setCloseOnExec(_ fd: Int32) {
        if let flags = try? retrying("fcntl", { fcntl(fd, F_GETFD) }) {
            _ = try? retrying("fcntl") { fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// True when `fd` is a socket.
    public static func isSocket(_ fd: Int32) -> Bool {
        var st = stat()
        guard (try? retrying("fstat", { fstat(fd, &st) })) != nil else { return false }
        return st.st_mode & S_IFMT == S_IFSOCK
    }

    /// close(2). Linux releases the descriptor even when close fails with EINTR, so it is never retried.
    public static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if need be), so
    /// that no socket opened later lands on them, as ssh and sshd do.
    public static func sanitizeStandardDescriptors() {
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) < 0 {
            let null = open("/dev/null", O_RDWR)
            if null >= 0 && null != fd {
                _ = dup2(null, fd)
                _ = Glibc.close(null)
            }
        }
    }

    /// A pipe, both ends close-on-exec, optionally non-blocking.
    public static func pipe(nonBlocking: Bool) throws(SystemError) -> (read: Descriptor, write: Descriptor) {
        var fds: [Int32] = [-1, -1]
        _ = try retrying("pipe2") { fived_pipe_cloexec(&fds, nonBlocking ? 1 : 0) }
        return (Descriptor(fds[0]), Descriptor(fds[1]))
    }

    /// A connected pair of AF_UNIX stream sockets, close-on-exec, optionally non-blocking.
    public static func socketPair(nonBlocking: Bool) throws(SystemError) -> (Descriptor, Descriptor) {
        var fds: [Int32] = [-1, -1]
        _ = try retrying("socketpair") { fived_socketpair_cloexec(&fds) }
        let pair = (Descriptor(fds[0]), Descriptor(fds[1]))
        if nonBlocking {
            try setNonBlocking(fds[0])
            try setNonBlocking(fds[1])
        }
        return pair
    }

    /// An eventfd for waking a thread: close-on-exec, non-blocking.
    public static func eventFD() throws(SystemError) -> Descriptor {
        Descriptor(try retrying("eventfd") { fived_eventfd() })
    }

    /// Adds one to an eventfd (wakes its reader).
    public static func signalEvent(_ fd: Int32) {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    /// Reads and resets an eventfd's counter.
    public static func clearEvent(_ fd: Int32) {
        var value: UInt64 = 0
        _ = Glibc.read(fd, &value, 8)
    }
}

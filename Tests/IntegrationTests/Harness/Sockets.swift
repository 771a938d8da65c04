#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Blocking socket helpers over Glibc. Every descriptor is created close-on-exec, so
/// the processes other tests spawn at the same time never inherit it.
/// Call these from `onThread { }`, not from async code directly.
enum Sockets {
    private static let streamCloexec = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)

    /// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
    static func listenTCP(backlog: Int32 = 128) throws -> (fd: Int32, port: UInt16) {
        let fd = try newSocket(AF_INET)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        try call(bind, fd, loopback(port: 0), orClose: "bind/listen 127.0.0.1:0")
        try listen(fd, backlog, orClose: "bind/listen 127.0.0.1:0")
        return (fd, try localPort(fd))
    }

    /// A listening Unix stream socket at `path` (replacing a stale file).
    static func listenUnix(path: String) throws -> Int32 {
        unlink(path)
        let fd = try newSocket(AF_UNIX)
        try call(bind, fd, try unixAddress(path), orClose: "bind/listen \(path)")
        try listen(fd, 128, orClose: "bind/listen \(path)")
        // fived started as root connects as its daemon_user: connect(2) needs write permission.
        chmod(path, 0o666)
        return fd
    }

    /// A loopback port that nothing listens on right now (bound, then closed).
    static func unusedPort() throws -> UInt16 {
        let fd = try newSocket(AF_INET)
        defer { close(fd) }
        guard withSocketAddress(loopback(port: 0), { bind(fd, $0, $1) }) == 0 else { throw HarnessError("bind: \(errnoText())") }
        return try localPort(fd)
    }

    /// A loopback port that refuses every connection for as long as `fd` stays
    /// open: bound and never listening, so no other process can take it (a
    /// port from `unusedPort` is free for anyone the moment it is returned).
    static func refusingPort() throws -> (fd: Int32, port: UInt16) {
        let fd = try newSocket(AF_INET)
        guard withSocketAddress(loopback(port: 0), { bind(fd, $0, $1) }) == 0 else { throw closing(fd, "bind") }
        return (fd, try localPort(fd))
    }

    /// A TCP connection to 127.0.0.1:`port`.
    static func connectTCP(port: UInt16) throws -> Int32 {
        let fd = try newSocket(AF_INET)
        try call(connect, fd, loopback(port: port), orClose: "connect 127.0.0.1:\(port)")
        return fd
    }

    /// A TCP connection to 127.0.0.1:`port` from `source` (any 127/8 address works
    /// on Linux loopback): bound before connect, so fived sees that client address.
    static func connectTCP(port: UInt16, from source: String) throws -> Int32 {
        let fd = try newSocket(AF_INET)
        var local = loopback(port: 0)
        local.sin_addr.s_addr = inet_addr(source)
        try call(bind, fd, local, orClose: "bind \(source)")
        try call(connect, fd, loopback(port: port), orClose: "connect 127.0.0.1:\(port) from \(source)")
        return fd
    }

    /// A connection to the Unix stream socket at `path`.
    static func connectUnix(path: String) throws -> Int32 {
        let fd = try newSocket(AF_UNIX)
        try call(connect, fd, try unixAddress(path), orClose: "connect \(path)")
        return fd
    }

    /// Writes all bytes, retrying short writes and EINTR.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in
                send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ENOTSOCK {
                    // A pipe: write(2) instead (SIGPIPE is not ignored by every runner, but
                    // a closed reader only happens in tests that expect failure).
                    let w = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
                    if w < 0 {
                        if errno == EINTR { continue }
                        throw HarnessError("write: \(errnoText())")
                    }
                    offset += w
                    continue
                }
                throw HarnessError("send: \(errnoText())")
            }
            offset += n
        }
    }

    /// A connected pair of Unix stream sockets, both close-on-exec: one end can be
    /// a child's stdin and stdout (`StandardInput.socket` duplicates it there).
    static func streamPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, streamCloexec, 0, &fds) == 0 else { throw HarnessError("socketpair: \(errnoText())") }
        return (fds[0], fds[1])
    }

    /// Sends `bytes` one at a time to an echo at the other end of `fd`, each only
    /// after the previous one came back, and returns how long each round trip took.
    /// Timed here, on the calling thread: run it in one `onThread { }` so that no
    /// round also counts the wait for a cooperative thread (which other tests
    /// running at the same time may keep busy for seconds). Throws when a byte is
    /// not back within `timeout`, or comes back different.
    static func echoRoundTrips(_ fd: Int32, _ bytes: [UInt8], timeout: Duration) throws -> [Duration] {
        var times: [Duration] = []
        for (index, byte) in bytes.enumerated() {
            let started = ContinuousClock.now
            try writeAll(fd, [byte])
            var echoed: UInt8 = 0
            while true {
                let left = started + timeout - ContinuousClock.now
                var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let milliseconds = max(0, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
                let rc = poll(&ready, 1, Int32(milliseconds))
                if rc < 0 && errno == EINTR { continue }
                guard rc > 0 else { throw HarnessError("echo: byte \(index + 1) of \(bytes.count) not back within \(timeout)") }
                let n = recv(fd, &echoed, 1, 0)
                if n < 0 && errno == EINTR { continue }
                guard n == 1 else { throw HarnessError("echo: byte \(index + 1) of \(bytes.count): \(n == 0 ? "end of stream" : errnoText())") }
                break
            }
            times.append(ContinuousClock.now - started)
            guard echoed == byte else { throw HarnessError("echo: byte \(index + 1) came back as \(echoed), not \(byte)") }
        }
        return times
    }

    /// Reads until EOF.
    static func readAll(_ fd: Int32) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HarnessError("read: \(errnoText())")
            }
            if n == 0 { return result }
            result.append(contentsOf: buffer[0..<n])
        }
    }

    /// Sends `bytes`, half-closes, and returns everything read until the peer's EOF;
    /// reading runs on its own thread while writing, so a large echo cannot deadlock.
    static func exchange(_ fd: Int32, _ bytes: [UInt8]) throws -> [UInt8] {
        let received = Mutex<Result<[UInt8], any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let reader = Thread {
            let r = Result { try readAll(fd) }
            received.withLock { $0 = r }
            done.signal()
        }
        reader.start()
        var writeError: (any Error)?
        do {
            try writeAll(fd, bytes)
            shutdown(fd, Int32(SHUT_WR))
        } catch {
            writeError = error
            shutdown(fd, Int32(SHUT_RDWR))
        }
        done.wait()
        if let writeError { throw writeError }
        return try received.withLock { $0! }.get()
    }

    /// A new close-on-exec stream socket of `family`.
    private static func newSocket(_ family: Int32) throws -> Int32 {
        let fd = socket(family, streamCloexec, 0)
        guard fd >= 0 else { throw HarnessError("socket: \(errnoText())") }
        return fd
    }

    /// `body(address as a sockaddr, its length)`: the cast every bind and connect needs.
    private static func withSocketAddress<Address>(_ address: Address, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<Address>.size)) }
        }
    }

    /// `bind` or `connect` of `fd` to `address`; on failure `fd` is closed and the
    /// error says `what` and errno.
    private static func call<Address>(
        _ function: (Int32, UnsafePointer<sockaddr>?, socklen_t) -> Int32, _ fd: Int32, _ address: Address, orClose what: String
    ) throws {
        guard withSocketAddress(address, { function(fd, $0, $1) }) == 0 else { throw closing(fd, what) }
    }

    /// `listen(2)`; on failure `fd` is closed and the error says `what` and errno.
    private static func listen(_ fd: Int32, _ backlog: Int32, orClose what: String) throws {
        guard Glibc.listen(fd, backlog) == 0 else { throw closing(fd, what) }
    }

    /// The error for a failed call on `fd` (errno read first), `fd` closed.
    private static func closing(_ fd: Int32, _ what: String) -> HarnessError {
        let text = errnoText()
        close(fd)
        return HarnessError("\(what): \(text)")
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw HarnessError("unix socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    private static func localPort(_ fd: Int32) throws -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw HarnessError("getsockname: \(errnoText())") }
        return UInt16(bigEndian: address.sin_port)
    }
}

extension Sockets {
    /// The accept loop of the test servers, on a thread of its own: each
    /// connection goes to `handle` on a thread of its own, until the listener is
    /// shut down (or `keepGoing` says stop); then the listener is closed.
    static func acceptEach(
        _ listener: Int32, while keepGoing: @escaping @Sendable () -> Bool = { true },
        _ handle: @escaping @Sendable (Int32) -> Void
    ) {
        let thread = Thread {
            while keepGoing() {
                let fd = GNU.acceptCloexec(listener)
                if fd < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    break
                }
                Thread { handle(fd) }.start()
            }
            close(listener)
        }
        thread.start()
    }
}

/// A backend for the tcp: and unix: tests: echoes every byte back, turns the client's
/// write shutdown into its own, and counts the connections it has served.
final class EchoServer: Sendable {
    /// The TCP port, for `listenTCP`; 0 for a Unix socket server.
    let port: UInt16
    /// The socket path, for a Unix socket server.
    let path: String?
    private let listener: Int32
    private let served = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    /// Connections accepted so far.
    var connections: Int { served.load(ordering: .relaxed) }

    private init(listener: Int32, port: UInt16, path: String?) {
        self.listener = listener
        self.port = port
        self.path = path
        Sockets.acceptEach(listener, while: { [self] in !stopped.load(ordering: .relaxed) }) { [self] fd in
            served.add(1, ordering: .relaxed)
            Self.echo(fd)
        }
    }

    /// An echo server on 127.0.0.1 with a kernel-chosen port.
    static func tcp() throws -> EchoServer {
        let (fd, port) = try Sockets.listenTCP()
        return EchoServer(listener: fd, port: port, path: nil)
    }

    /// An echo server on a Unix socket at `path`.
    static func unix(path: String) throws -> EchoServer {
        EchoServer(listener: try Sockets.listenUnix(path: path), port: 0, path: path)
    }

    /// Stops accepting; connections already served run to their end.
    func stop() {
        if stopped.exchange(true, ordering: .relaxed) { return }
        shutdown(listener, Int32(SHUT_RDWR))  // wakes accept() on Linux
        if let path { unlink(path) }
    }

    private static func echo(_ fd: Int32) {
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            guard (try? Sockets.writeAll(fd, Array(buffer[0..<n]))) != nil else { return }
        }
        shutdown(fd, Int32(SHUT_WR))
    }
}

/// A TCP backend that records what each connection sends (until the client's EOF),
/// answers `reply`, then closes: for checking the PROXY v2 header fived sends first.
/// With `keepOpen`, it neither answers nor closes after the EOF: the connection
/// stays half-open until `stop()`, so fived's channel to it does not end by itself.
final class RecordingServer: Sendable {
    let port: UInt16
    private let listener: Int32
    private let received = Mutex<[[UInt8]]>([])
    private let kept = Mutex<[Int32]>([])

    /// What each finished connection sent, in order of their ends.
    var recordings: [[UInt8]] { received.withLock { $0 } }

    init(reply: [UInt8] = Array("ok\n".utf8), keepOpen: Bool = false) throws {
        let (fd, port) = try Sockets.listenTCP()
        self.listener = fd
        self.port = port
        Sockets.acceptEach(listener) { [self] fd in
            let bytes = (try? Sockets.readAll(fd)) ?? []
            received.withLock { $0.append(bytes) }
            if keepOpen {
                kept.withLock { $0.append(fd) }
            } else {
                try? Sockets.writeAll(fd, reply)
                close(fd)
            }
        }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        kept.withLock { fds in
            fds.forEach { close($0) }
            fds.removeAll()
        }
    }
}

import FivedCore
import FivedRuntime
@testable import FivedServer
import FivedSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Backend connects never wait: a connect that does not finish at once is
/// handed back pending, and finishes (or fails, or times out) when polled.
@Suite("Backend connects", .timeLimit(.minutes(1)))
struct BackendConnectorTests {
    /// Polls a pending connect until it settles (as the worker's epoll would).
    func settle(_ backend: PendingBackend) -> PendingConnect.Progress {
        guard case .connect(let pending) = backend else { return .failed(BackendFailure(.connect, "not a connect")) }
        while true {
            var pfd = pollfd(fd: pending.descriptor.rawValue, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, 50)
            let progress = pending.advance(now: MonotonicClock.now)
            if case .pending = progress { continue }
            return progress
        }
    }

    func listener(backlog: Int32 = 16) throws -> (Descriptor, UInt16) {
        let socket = try Socket.listen(try SocketAddress.resolve(host: "127.0.0.1", port: 0, passive: true)[0], backlog: backlog)
        return (socket, Socket.boundPort(socket.rawValue))
    }

    @Test func aListeningServiceIsConnected() throws {
        let (socket, port) = try listener()
        defer { socket.close() }
        switch try BackendConnector.start(.tcp(host: "127.0.0.1", port: port), timeoutMilliseconds: 2000) {
        case .ready(let backend):
            #expect(backend.stream != nil)
        case .pending(let pending):
            guard case .connected(let backend) = settle(pending) else { Issue.record("not connected"); return }
            #expect(backend.stream != nil)
        }
    }

    @Test func aClosedPortIsRefused() throws {
        let (socket, port) = try listener()
        socket.close()
        do {
            switch try BackendConnector.start(.tcp(host: "127.0.0.1", port: port), timeoutMilliseconds: 2000) {
            case .ready: Issue.record("connected to a closed port")
            case .pending(let pending):
                guard case .failed(let failure) = settle(pending) else { Issue.record("not refused"); return }
                #expect(failure.code == .connect && failure.description.hasSuffix("Connection refused"), "\(failure)")
            }
        } catch {
            #expect(error.code == .connect && error.description.hasSuffix("Connection refused"), "\(error)")
        }
    }

    @Test func aBlackHoleTimesOutWithoutBlocking() throws {
        // listen(0) with its queue full: further SYNs are dropped, the connect never completes.
        let (socket, port) = try listener(backlog: 0)
        defer { socket.close() }
        var fillers: [Descriptor] = []
        for _ in 0..<4 {
            let s = try Socket.stream(family: AF_INET)
            _ = try? Socket.connect(s.rawValue, to: try SocketAddress.resolve(host: "127.0.0.1", port: port, passive: false)[0])
            fillers.append(s)
        }
        usleep(100_000)
        let started = MonotonicClock.now
        guard
            case .pending(let pending) = try BackendConnector.start(
                .tcp(host: "127.0.0.1", port: port), timeoutMilliseconds: 500)
        else { Issue.record("a black hole answered"); return }
        #expect(MonotonicClock.now - started < 100, "start() waited")
        guard case .failed(let failure) = settle(pending) else { Issue.record("a black hole connected"); return }
        #expect(failure.code == .timeout)
        #expect(MonotonicClock.now - started >= 450)
        _ = fillers
    }

    @Test func unixSocketsConnectOrFailAtOnce() throws {
        let path = "/tmp/fived-runtime-\(getpid()).sock"
        unlink(path)
        defer { unlink(path) }
        #expect(throws: BackendFailure.self) { try BackendConnector.connectUnix(path: path) }
        let socket = try Socket.listen(try SocketAddress.unix(path: path), backlog: 4)
        defer { socket.close() }
        #expect(try BackendConnector.connectUnix(path: path).stream != nil)
        #expect { try BackendConnector.connectUnix(path: "/" + String(repeating: "p", count: 120)) } throws: {
            ($0 as? BackendFailure)?.code == .tooLong
        }
    }
}

import Dispatch
import FivedCore
import FivedSystem
import FlyingFox
import FlyingSocks
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where Prometheus reads fived's metrics: HTTP/1.1 `GET /metrics` answered by
/// FlyingFox's HTTP server (fived parses no HTTP itself), in two places:
///
/// - the built-in `metrics` service: a server on a Unix socket in a directory
///   only fived's user may enter (mode 0700, made with `mkdtemp` under
///   `$RUNTIME_DIRECTORY`, `$TMPDIR` or /tmp); a `metrics` channel is connected
///   to it as a `unix:` backend would be, so `ssh -L 9101:metrics:1 host` and
///   `fived-connect -L 9101:metrics host` give a local port to scrape, and the
///   channel's allow list (`[services.metrics] allow`) decides who may;
/// - `metrics_listen`: the same server on a loopback TCP address, for a
///   Prometheus on the host itself (no authentication: loopback only).
///
/// The servers run on Swift's cooperative pool (FlyingFox's non-blocking
/// sockets, its own epoll), never on a worker thread; a scrape takes the
/// registry's lock only while rendering.
final class MetricsEndpoint: Sendable {
    static let shared = MetricsEndpoint()

    /// The HTTP server's idle and request timeout, in seconds.
    static let timeoutSeconds: TimeInterval = 15
    /// The content type of the Prometheus text format 0.0.4.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private struct State {
        var channelServer: HTTPServer?
        var listenServer: HTTPServer?
        var directory: String?
        var socketPath: String?
        var probe: LoopLagProbe?
    }
    private let state = Mutex(State())

    /// What went wrong starting an endpoint, naming the address or path.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    // MARK: metrics_listen

    /// Serves `address` (a loopback `metrics_listen`) until `stop()`; returns the
    /// address bound (port 0 picks one). Throws when it cannot listen there.
    @discardableResult
    func listen(_ address: ListenAddress, logger: Logger) throws(Failure) -> String {
        let socketAddress: any FlyingSocks.SocketAddress
        do {
            if address.host.contains(":") {
                socketAddress = try sockaddr_in6.inet6(ip6: address.host, port: address.port)
            } else {
                socketAddress = try sockaddr_in.inet(ip4: address.host, port: address.port)
            }
        } catch {
            throw Failure(description: "metrics_listen: cannot use \(address): \(error)")
        }
        let server = Self.makeServer(socketAddress, via: "listener")
        do {
            try Self.startAndWait(server)
        } catch {
            throw Failure(description: "metrics_listen: cannot listen on \(address): \(error)")
        }
        state.withLock { $0.listenServer = server }
        let bound = Self.bound(server) ?? address.description
        logger.info("metrics listening", metadata: ["address": "\(bound)"])
        return bound
    }

    // MARK: The metrics service

    /// Starts the server behind the `metrics` service, and the worker lag probe
    /// and scrape-time gauges. Call once the workers run (and, when fived drops
    /// root, after it has: the socket's directory belongs to the user that makes it).
    /// A failure is logged, not fatal: fived serves without it, and `metrics`
    /// channels are refused as a backend that is down.
    func startService(workers: [Worker], publications: Publications, logger: Logger) {
        let probe = LoopLagProbe(workers: workers)
        DaemonMetrics.shared.beforeEachScrape { [publications] in
            DaemonMetrics.shared.publishedNames.set(publications.names.count)
        }
        state.withLock { $0.probe = probe }
        do {
            try startServer(logger: logger)
        } catch {
            logger.error("metrics service unavailable", metadata: ["reason": "\(error.description)"])
        }
    }

    private func startServer(logger: Logger) throws(Failure) {
        let parent =
            ProcessInfo.processInfo.environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first.map(String.init)
            ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(parent)/fived-metrics.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw Failure(description: "metrics: cannot make a private directory in \(parent): \(errnoText(errno))")
        }
        let directory = String(cString: made)
        let path = directory + "/http.sock"
        let server = Self.makeServer(sockaddr_un.unix(path: path), via: "channel")
        do {
            try Self.startAndWait(server)
        } catch {
            rmdir(directory)
            throw Failure(description: "metrics: cannot listen on \(path): \(error)")
        }
        state.withLock {
            $0.channelServer = server
            $0.directory = directory
            $0.socketPath = path
        }
        logger.debug("metrics service ready", metadata: ["socket": "\(path)"])
    }

    /// Connects a `metrics` channel to the service's server.
    func connect() throws(BackendFailure) -> BackendConnection {
        guard let path = state.withLock({ $0.socketPath }) else {
            throw BackendFailure(.connect, "the metrics endpoint is not running")
        }
        return try BackendConnector.connectUnix(path: path)
    }

    /// Stops the probe and removes the socket and its directory (fived is
    /// exiting). The servers are not waited for: FlyingFox's stop waits up to
    /// its timeout for the accept loop, which would delay every SIGTERM, and
    /// their sockets close with the process.
    func stop() {
        let old = state.withLock { s -> State in
            defer { s = State() }
            return s
        }
        old.probe?.cancel()
        if let path = old.socketPath { unlink(path) }
        if let directory = old.directory { rmdir(directory) }
    }

    // MARK: Servers

    /// A server answering `GET /metrics` with the exposition (`MetricsHandler`).
    private static func makeServer(_ address: some FlyingSocks.SocketAddress, via: String) -> HTTPServer {
        HTTPServer(address: address, timeout: timeoutSeconds, logger: HTTPLog(), handler: MetricsHandler(via: via))
    }

    /// Runs `server` on the cooperative pool and waits (up to 5 s) until it
    /// listens; throws what kept it from listening.
    private static func startAndWait(_ server: HTTPServer) throws {
        let outcome = OneShot<Result<Void, any Error>>()
        Task {
            do {
                try await server.run()
            } catch {
                outcome.fulfil(.failure(error))
            }
        }
        Task {
            do {
                try await server.waitUntilListening(timeout: 5)
                outcome.fulfil(.success(()))
            } catch {
                outcome.fulfil(.failure(Failure(description: "not listening after 5 s")))
            }
        }
        guard let result = outcome.wait(seconds: 10) else { throw Failure(description: "not listening after 10 s") }
        try result.get()
    }

    /// `HOST:PORT` of a TCP server's socket.
    private static func bound(_ server: HTTPServer) -> String? {
        let address = OneShot<FlyingSocks.Socket.Address?>()
        Task { address.fulfil(await server.listeningAddress) }
        switch address.wait(seconds: 2) {
        case .ip4(let host, let port)??: return "\(host):\(port)"
        case .ip6(let host, let port)??: return "[\(host)]:\(port)"
        default: return nil
        }
    }
}

/// A value that one thread or task gives once (later ones are dropped) and
/// another thread waits for: how the daemon's threads, which are not tasks,
/// wait for FlyingFox's async calls.
final class OneShot<Value: Sendable>: @unchecked Sendable {
    private let value = Mutex<Value?>(nil)
    private let given = DispatchSemaphore(value: 0)

    func fulfil(_ v: Value) {
        let first = value.withLock { held -> Bool in
            guard held == nil else { return false }
            held = v
            return true
        }
        if first { given.signal() }
    }

    /// The value, or nil after `seconds`.
    func wait(seconds: Double) -> Value? {
        guard given.wait(timeout: .now() + seconds) == .success else { return nil }
        return value.withLock { $0 }
    }
}

/// FlyingFox's log: nothing (a scrape is counted in `fived_metrics_scrapes_total`,
/// and a `metrics` channel is logged like any channel).
struct HTTPLog: FlyingSocks.Logging {
    func logDebug(_ debug: @autoclosure () -> String) {}
    func logInfo(_ info: @autoclosure () -> String) {}
    func logWarning(_ warning: @autoclosure () -> String) {}
    func logError(_ error: @autoclosure () -> String) {}
    func logCritical(_ critical: @autoclosure () -> String) {}
}

/// Answers `GET /metrics` with the exposition, another path with 404 and
/// another method with 405; FlyingFox has parsed the request.
struct MetricsHandler: HTTPHandler {
    /// The `via` label of `fived_metrics_scrapes_total`.
    let via: String

    func handleRequest(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard request.path == "/metrics" else { return HTTPResponse(statusCode: .notFound) }
        guard request.method == .GET else {
            return HTTPResponse(statusCode: .methodNotAllowed, headers: HTTPHeaders(dictionaryLiteral: (HTTPHeader("Allow"), "GET")))
        }
        return HTTPResponse(
            statusCode: .ok, headers: HTTPHeaders(dictionaryLiteral: (.contentType, MetricsEndpoint.contentType)),
            body: Data(DaemonMetrics.shared.exposition(via: via)))
    }
}

/// Samples each worker's event-loop lag once a second: the time from handing a
/// job to the worker's inbox to the loop running it, which is how long any
/// event on that worker can wait behind the work of a loop turn
/// (`fived_worker_loop_lag_seconds`). An idle worker answers at once (its
/// inbox wakes it); a worker busy in a long turn answers late.
final class LoopLagProbe: @unchecked Sendable {
    /// Touched only by `init` and `cancel`.
    private let timer: DispatchSourceTimer

    init(workers: [Worker]) {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now() + 1, repeating: 1.0, leeway: .milliseconds(100))
        timer.setEventHandler {
            for worker in workers {
                let sent = MonotonicClock.nanoseconds
                worker.perform { w in
                    DaemonMetrics.shared.loopLag(worker: w.index, nanoseconds: MonotonicClock.nanoseconds &- sent)
                }
            }
        }
        timer.resume()
    }

    func cancel() {
        timer.cancel()
    }
}

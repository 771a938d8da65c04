import CSystem
import FivedCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One connection on a plain RFC 1078 TCPMUX listener: read `NAME CRLF` within
/// 10 s, answer `+` or `-reason`, then relay bytes between the client and the
/// service, half-closing each way on EOF. No authentication, no encryption:
/// only services marked `tcpmux = true` are offered.
final class TCPMUXConnection {
    /// RFC 1078 gives no time limit; SPEC does.
    static let nameTimeoutMilliseconds: Int64 = 10_000
    static let bufferSize = 64 * 1024

    enum Phase { case readingName, relaying, finished }

    let client: Endpoint
    let local: Endpoint
    let clientFD: Int32
    let deadline: Int64
    private(set) var phase = Phase.readingName
    private(set) var backend: BackendConnection?
    private(set) var service = "-"
    private var reader = TCPMUXLineReader()
    private var toBackend: [UInt8] = []
    private var toBackendOffset = 0
    private var toClient: [UInt8] = []
    private var toClientOffset = 0
    private var clientEOF = false
    private var backendEOF = false
    private var backendShut = false
    private var clientShut = false
    private var stderrLine: [UInt8] = []
    private(set) var bytesIn = 0
    private(set) var bytesOut = 0
    let startedAt = MonotonicClock.now
    var closeReason = "closed"

    // Poller registrations, managed by the worker.
    var clientRegistration: Poller.Registration = (0, 0)
    var backendRegistration: Poller.Registration = (0, 0)
    var stderrRegistration: UInt64 = 0

    init(fd: Int32, client: Endpoint, local: Endpoint) {
        self.clientFD = fd
        self.client = client
        self.local = local
        self.deadline = MonotonicClock.now + Self.nameTimeoutMilliseconds
    }

    /// Reads the request line; once complete, `request` decides.
    func readName(decide: (TCPMUXRequest) -> (reply: String, backend: BackendConnection?, service: String)) {
        guard phase == .readingName else { return }
        var buf = [UInt8](repeating: 0, count: 512)
        while phase == .readingName {
            let n = recv(clientFD, &buf, buf.count, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                finish("client error before a name")
                return
            }
            if n == 0 {
                finish("client closed before a name")
                return
            }
            switch reader.feed(buf[0..<n]) {
            case .needMore:
                continue
            case .tooLong:
                reply("-name line too long\r\n")
                finish("name line too long")
            case .complete(let request, let remainder):
                let decision = decide(request)
                service = decision.service
                guard let backend = decision.backend else {
                    reply(decision.reply)
                    finish("refused")
                    return
                }
                self.backend = backend
                toClient = Array(decision.reply.utf8)
                toBackend += remainder
                phase = .relaying
            }
        }
    }

    /// Times out a client that named nothing.
    func expire() {
        guard phase == .readingName else { return }
        reply("-timeout\r\n")
        finish("no name within 10 s")
    }

    /// Best effort: the answer is short and the socket buffer empty.
    private func reply(_ text: String) {
        let bytes = Array(text.utf8)
        _ = send(clientFD, bytes, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
    }

    /// Moves bytes both ways as far as the descriptors allow.
    func relay() {
        guard phase == .relaying, let backend else { return }
        var progress = true
        var rounds = 0
        while progress && rounds < 16 && phase == .relaying {
            progress = false
            rounds += 1
            if flush(&toClient, &toClientOffset, to: clientFD, counter: &bytesOut) { progress = true }
            if flush(&toBackend, &toBackendOffset, to: backend.fd, counter: &bytesIn) { progress = true }
            if phase != .relaying { return }
            if !clientEOF && toBackendOffset >= toBackend.count {
                switch fill(from: clientFD) {
                case .data(let bytes): toBackend = bytes; toBackendOffset = 0; progress = true
                case .eof: clientEOF = true; progress = true
                case .wouldBlock: break
                case .failed: finish("client read error"); return
                }
            }
            if !backendEOF && toClientOffset >= toClient.count {
                switch fill(from: backend.fd) {
                case .data(let bytes): toClient = bytes; toClientOffset = 0; progress = true
                case .eof: backendEOF = true; progress = true
                case .wouldBlock: break
                case .failed: backendEOF = true; closeReason = "backend read error"; progress = true
                }
            }
            if clientEOF && !backendShut && toBackendOffset >= toBackend.count {
                _ = shutdown(backend.fd, Int32(SHUT_WR))
                backendShut = true
            }
            if backendEOF && !clientShut && toClientOffset >= toClient.count {
                _ = shutdown(clientFD, Int32(SHUT_WR))
                clientShut = true
            }
        }
        if backendShut && clientShut {
            finish(closeReason)
        }
    }

    /// Reads the exec backend's stderr into the log, a line at a time.
    func drainStderr(logger: Logger) -> Bool {
        guard let backend, backend.stderrFD >= 0 else { return false }
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(backend.stderrFD, &buf, buf.count)
            if n < 0 { return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) }
            if n == 0 { logLine(logger); return true }
            for b in buf[0..<n] {
                if b == 0x0A || stderrLine.count >= 1024 { logLine(logger) }
                if b != 0x0A { stderrLine.append(b) }
            }
        }
    }

    private func logLine(_ logger: Logger) {
        guard !stderrLine.isEmpty else { return }
        logger.info("service stderr", metadata: [
            "client": "\(client)", "service": "\(service)", "form": "tcpmux",
            "text": "\(String(decoding: stderrLine, as: UTF8.self))",
        ])
        stderrLine.removeAll()
    }

    private enum Fill { case data([UInt8]), eof, wouldBlock, failed }

    private func fill(from fd: Int32) -> Fill {
        var failed = false
        var eof = false
        let bytes = [UInt8](unsafeUninitializedCapacity: Self.bufferSize) { buf, count in
            let n = recv(fd, buf.baseAddress, Self.bufferSize, Int32(MSG_DONTWAIT))
            count = max(n, 0)
            if n == 0 { eof = true }
            if n < 0 && !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { failed = true }
        }
        if failed { return .failed }
        if eof { return .eof }
        return bytes.isEmpty ? .wouldBlock : .data(bytes)
    }

    /// Writes what it can; true when it wrote anything.
    private func flush(_ buffer: inout [UInt8], _ offset: inout Int, to fd: Int32, counter: inout Int) -> Bool {
        guard offset < buffer.count else { return false }
        let remaining = buffer.count - offset
        let n = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + offset, remaining, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return false }
            finish(fd == clientFD ? "client write error" : "backend write error")
            return false
        }
        offset += n
        counter += n
        if offset >= buffer.count { buffer.removeAll(keepingCapacity: true); offset = 0 }
        return n > 0
    }

    func finish(_ reason: String) {
        guard phase != .finished else { return }
        closeReason = reason
        phase = .finished
    }

    /// Events wanted on the client socket now.
    var wantedClientEvents: UInt32 {
        switch phase {
        case .finished: return 0
        case .readingName: return Poller.readable
        case .relaying:
            var ev: UInt32 = 0
            if !clientEOF && toBackendOffset >= toBackend.count { ev |= Poller.readable }
            if toClientOffset < toClient.count { ev |= Poller.writable }
            return ev
        }
    }

    /// Events wanted on the backend stream now.
    var wantedBackendEvents: UInt32 {
        guard phase == .relaying else { return 0 }
        var ev: UInt32 = 0
        if !backendEOF && toClientOffset >= toClient.count { ev |= Poller.readable }
        if toBackendOffset < toBackend.count { ev |= Poller.writable }
        return ev
    }

    func takeBackend() -> BackendConnection? {
        defer { backend = nil }
        return backend
    }
}

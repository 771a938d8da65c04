import FivedCore
import FivedRuntime
import FivedSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One connection on a plain RFC 1078 TCPMUX listener: read `NAME CRLF` within
/// 10 s, answer `+` or `-reason`, then relay bytes between the client and the
/// service with the same state machine and relay as an SSH channel (the client
/// is the peer; its EOF is a half-close each way). No authentication, no
/// encryption: only services marked `tcpmux = true` are offered.
final class TCPMUXConnection: AwaitsBackend {
    /// RFC 1078 gives no time limit; SPEC does.
    static let nameTimeoutMilliseconds: Int64 = 10_000
    static let chunkSize = 256 * 1024

    let client: Endpoint
    let local: Endpoint
    let socket: Descriptor
    let deadline: Int64
    private(set) var machine = ChannelStateMachine(phase: .awaitingRequest, reportsExit: false)
    private(set) var backend: BackendConnection?
    private(set) var service = "-"
    /// Why it ended; nil while it lives.
    private(set) var ended: TCPMUXEndReason?
    private var reader = TCPMUXLineReader()
    let startedAt = MonotonicClock.now
    /// Its part in the metrics, as a channel of form `tcpmux` once it names an
    /// offered service (Metrics/ChannelMeter.swift).
    var meter = ChannelMeter()
    /// When its backend connect (or exec start) began (MonotonicClock ns); nil once ended.
    var backendConnectBegan: UInt64?

    let inbound = RelayDirection(chunkSize: chunkSize)
    let outbound = RelayDirection(chunkSize: chunkSize)
    let errors = RelayDirection(chunkSize: 4096)
    private let clientEnd: DescriptorEnd
    private var backendEnd: DescriptorEnd? { backend?.streamEnd }
    private var errorsSource: DescriptorEnd? { backend?.errorsEnd }
    private lazy var errorsLog = StderrLineSink { [unowned self] line in
        logger?.info(
            "service stderr",
            metadata: [
                "client": "\(client)", "service": "\(service)", "form": "tcpmux",
                "text": "\(String(decoding: line, as: UTF8.self))",
            ])
    }
    var logger: Logger?

    // Poller registrations, managed by the worker.
    var clientRegistration = PollRegistration.none
    var backendRegistration = PollRegistration.none
    var stderrRegistration = PollRegistration.none

    /// The plain listener's per-source slot, held for the connection's whole life.
    let slot: StartupSlot

    init(socket: Descriptor, client: Endpoint, local: Endpoint, slot: StartupSlot) {
        self.slot = slot
        self.socket = socket
        self.client = client
        self.local = local
        self.deadline = MonotonicClock.now + Self.nameTimeoutMilliseconds
        self.clientEnd = DescriptorEnd(fd: socket.rawValue, isSocket: true)
    }

    var isReadingName: Bool { machine.phase == .awaitingRequest && ended == nil }
    var isConnecting: Bool { machine.phase == .connecting && ended == nil }
    var bytesIn: Int { inbound.bytesMoved }
    var bytesOut: Int { outbound.bytesMoved }

    /// What `readName` asks its caller to decide: the reply line, and the
    /// backend (ready, or still connecting) with the bytes to send it first (a
    /// PROXY v2 header) when admitted.
    struct Decision {
        var reply: String
        var backend: BackendConnector.Start?
        var preamble: [UInt8] = []
        var service: String
    }

    /// A connect in flight: the client gets its `+` or `-` when it ends.
    private(set) var pendingBackend: PendingBackend?
    var registeredConnect = PollRegistration.none
    private var pendingStart: (reply: String, preamble: [UInt8])?

    /// Reads the request line; once complete, `decide` answers it.
    func readName(decide: (TCPMUXRequest) -> Decision) {
        var buf = [UInt8](repeating: 0, count: 512)
        while isReadingName {
            let result = buf.withUnsafeMutableBytes { clientEnd.read(into: $0) }
            switch result {
            case .wouldBlock:
                return
            case .failed(let why):
                finish(.errorBeforeName(why))
                return
            case .end:
                finish(.closedBeforeName)
                return
            case .bytes(let n):
                switch reader.feed(buf[0..<n]) {
                case .needMore:
                    continue
                case .tooLong:
                    reply("-name line too long\r\n")
                    finish(.nameTooLong)
                case .complete(let request, let remainder):
                    let decision = decide(request)
                    service = decision.service
                    switch decision.backend {
                    case nil:
                        reply(decision.reply)
                        finish(.refused)
                    case .ready(let backend)?:
                        attach(backend, reply: decision.reply, preamble: decision.preamble + remainder)
                    case .pending(let backend)?:
                        pendingBackend = backend
                        pendingStart = (decision.reply, decision.preamble + remainder)
                        apply(.connecting)
                    }
                    return
                }
            }
        }
    }

    /// The backend connect ended: `+` and the relay, or `-` and the end.
    func backendConnectEnded(_ result: Result<BackendConnection, BackendFailure>) {
        pendingBackend = nil
        guard ended == nil, let start = pendingStart else {
            if case .success(let backend) = result { backend.closeStream() }
            return
        }
        pendingStart = nil
        switch result {
        case .success(let backend):
            attach(backend, reply: start.reply, preamble: start.preamble)
        case .failure(let failure):
            meterBackendUnavailable()
            logger?.info("tcpmux backend unavailable", metadata: ["client": "\(client)", "service": "\(service)", "reason": "\(failure)"])
            reply("-service not available\r\n")
            finish(.refused)
        }
    }

    private func attach(_ backend: BackendConnection, reply: String, preamble: [UInt8]) {
        meterAttached()
        self.backend = backend
        if backend.errorsEnd == nil { errors.endSource() }
        outbound.prepend(Array(reply.utf8))
        if !preamble.isEmpty { inbound.prepend(preamble) }
        apply(.attached(awaitsExit: false))
        pump()
    }

    /// Times out a client that named nothing.
    func expire() {
        guard isReadingName else { return }
        reply("-timeout\r\n")
        finish(.nameTimeout)
    }

    /// fived is stopping.
    func stop() {
        finish(.stopping)
    }

    /// True once a last reply (`-reason`, the HELP list) was written: the socket closes lingering.
    private(set) var lastWordWritten = false

    /// Best effort: the answer is short and the socket buffer empty.
    private func reply(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { try? Syscall.send(socket.rawValue, $0) }
        lastWordWritten = true
    }

    // MARK: Events and the relay

    func clientEvent(_ revents: UInt32) {
        if revents & (PollEvents.readable | PollEvents.hangup) != 0 { inbound.sourceReady = true }
        if revents & (PollEvents.writable | PollEvents.hangup) != 0 { outbound.sinkReady = true }
    }

    func backendEvent(_ revents: UInt32) {
        if revents & (PollEvents.readable | PollEvents.hangup) != 0 { outbound.sourceReady = true }
        if revents & (PollEvents.writable | PollEvents.hangup) != 0 { inbound.sinkReady = true }
    }

    func stderrEvent(_ revents: UInt32) {
        errors.sourceReady = true
    }

    /// Moves bytes both ways as far as the descriptors allow, and half-closes as
    /// the state machine says.
    func pump() {
        guard ended == nil, machine.phase == .relaying, let backendEnd else { return }
        for _ in 0..<4 {
            let moreIn = inbound.pump(from: clientEnd, to: backendEnd, budget: 2 * Self.chunkSize)
            let moreOut = outbound.pump(from: backendEnd, to: clientEnd, budget: 2 * Self.chunkSize)
            report()
            guard ended == nil, moreIn || moreOut else { break }
        }
        if let errorsSource, !errors.sourceEnded {
            errors.pump(from: errorsSource, to: errorsLog, budget: 64 * 1024)
        }
    }

    private func report() {
        if inbound.sourceEnded, !machine.peerSentEOF {
            if let why = inbound.readFailure {
                apply(.abort(.peerReadError(why)))
                return
            }
            apply(.peerEOF)
        }
        if inbound.sinkClosed {
            apply(.inboundAbandoned(failure: inbound.writeFailure.map { .localWriteError($0) }))
        } else if inbound.isDelivered, machine.inbound == .ending {
            apply(.inboundDelivered)
        }
        if outbound.sinkClosed {
            apply(.abort(.peerWriteError(outbound.writeFailure ?? "the client stopped reading")))
            return
        }
        if outbound.sourceEnded, machine.outbound == .open {
            apply(.outboundEnded(failure: outbound.readFailure.map { .localReadError($0) }))
        }
        if machine.outbound == .ending, !outbound.hasPending {
            apply(.outboundDelivered)
        }
    }

    private func apply(_ event: ChannelStateMachine.Event) {
        guard ended == nil else { return }
        let actions: [ChannelStateMachine.Action]
        do {
            actions = try machine.handle(event)
        } catch {
            finish(.relay(.protocolViolation(error)))
            return
        }
        for action in actions {
            switch action {
            case .shutdownLocalInput: backend?.shutdownInput()
            case .sendEOF: Syscall.shutdownWrite(socket.rawValue)
            case .release(let reason): finish(.relay(reason))
            case .deliver, .leave, .discard, .reply, .sendExit, .sendClose: break
            }
        }
    }

    /// Ends the connection (once); the worker tears it down.
    func finish(_ reason: TCPMUXEndReason) {
        guard ended == nil else { return }
        ended = reason
    }

    /// Logs what is left of the service's stderr.
    func flushStderr() {
        errorsLog.flush()
    }

    // MARK: What the worker registers

    /// Events wanted on the client socket now.
    var wantedClientEvents: UInt32 {
        guard ended == nil else { return 0 }
        if isReadingName { return PollEvents.readable }
        guard machine.phase == .relaying else { return 0 }
        var ev: UInt32 = 0
        if !inbound.sourceEnded && !inbound.sourceReady && !inbound.hasPending { ev |= PollEvents.readable }
        if outbound.hasPending && !outbound.sinkReady { ev |= PollEvents.writable }
        return ev
    }

    /// Events wanted on the backend stream now.
    var wantedBackendEvents: UInt32 {
        guard ended == nil, machine.phase == .relaying else { return 0 }
        var ev: UInt32 = 0
        if !outbound.sourceEnded && !outbound.sourceReady && !outbound.hasPending { ev |= PollEvents.readable }
        if inbound.hasPending && !inbound.sinkReady { ev |= PollEvents.writable }
        return ev
    }

    /// Events wanted on the service's stderr now.
    var wantedStderrEvents: UInt32 {
        guard ended == nil, errorsSource != nil, !errors.sourceEnded, !errors.sourceReady else { return 0 }
        return PollEvents.readable
    }

    func takeBackend() -> BackendConnection? {
        defer { backend = nil }
        return backend
    }
}

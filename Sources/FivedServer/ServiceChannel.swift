import FivedCore
import FivedRuntime
import FivedSystem
import LibSSH
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One SSH channel joined to one backend: its state machine and its relay.
///
/// Three relay directions: the client's data to the service (`inbound`), the
/// service's output to the client (`outbound`), and an exec service's stderr
/// (`errors`) to the client's extended data on session channels or to the log
/// on direct-tcpip channels. libssh callbacks and descriptor events only record
/// what happened and mark the channel dirty; the worker calls `pump()` between
/// polls, where libssh may safely be re-entered. Memory per channel is bounded:
/// one `chunkSize` buffer each way plus what libssh buffers within the window.
final class ServiceChannel: SSHChannelDelegate, ProcessOwner {
    /// Largest read from a backend or from libssh's buffer in one go. 256 KiB
    /// rather than 64: per GiB downloaded, a quarter of the reads, channel writes
    /// and socket flushes (64 KiB cost ~15% more CPU in 1 GiB downloads through
    /// bench/profile.sh).
    static let chunkSize = 256 * 1024
    /// Bytes moved toward the client per channel per pump, so one busy channel
    /// cannot starve the others on its worker.
    static let pumpBudget = 512 * 1024
    /// Bytes moved toward the service per pump from libssh's buffer (8 reads).
    static let inboundBudget = 8 * chunkSize
    /// Largest read from an exec service's stderr (usually short diagnostics).
    static let stderrChunkSize = 4096
    /// While the client is still sending, its data goes to the backend in sends of
    /// at least this much rather than one per SSH packet (~32 KiB): a send on a
    /// stream socket costs the same fixed work (and a wake-up of the service)
    /// whatever its size. libssh keeps the bytes meanwhile; the connection releases
    /// them when its socket runs dry, or one read pass later (Worker.service).
    /// Measured with bench/profile.sh (median of 7 uploads, CPU per GiB): 128 KiB
    /// 1.36 s, 256 KiB 0.99 s, 384 KiB 0.97 s, 512 KiB 1.01 s. It must stay well
    /// under libssh's window threshold (640,000 bytes counting what is held), or
    /// the client's window would close while fived waits for more.
    static let coalesceBytes = 384 * 1024

    let id: UInt64
    let output: ChannelOutput
    var channel: SSHChannel { output.channel }
    unowned let connection: Connection
    let isSessionChannel: Bool
    private(set) var machine: ChannelStateMachine
    private(set) var form: ChannelForm?
    private(set) var service: String = "-"
    /// The form for logs; forwarded-tcpip (toward a publisher) is not a ChannelForm.
    var formLabel: String { labelOverride ?? form?.rawValue ?? "session" }
    private var labelOverride: String?
    private(set) var backend: BackendConnection?
    /// The session request (exec/subsystem/shell) waiting for its reply until the backend is ready.
    private var pendingRequest: SSHMessage?
    /// The bytes to send the backend first (a PROXY v2 header) once its connect finishes.
    var pendingPreamble: [UInt8] = []
    /// Opened by the client (not toward a publisher): counted in `max_channels_per_key`.
    var countsAgainstKey = false
    /// Its part in the metrics (Metrics/ChannelMeter.swift).
    var meter = ChannelMeter()

    let inbound = RelayDirection(chunkSize: chunkSize)
    let outbound = RelayDirection(chunkSize: chunkSize)
    let errors = RelayDirection(chunkSize: stderrChunkSize)
    /// The backend stream, read for `outbound` and written for `inbound`.
    private var backendEnd: DescriptorEnd? { backend?.streamEnd }
    private var errorsSource: DescriptorEnd? { backend?.errorsEnd }
    private var errorsSink: RelaySink?
    /// The service closed its end entirely (EPOLLHUP).
    private var backendHungUp = false
    private var outboundEndReported = false
    /// The client said it reads no more output (`eow@openssh.com`).
    private var peerStoppedReadingOutput = false
    /// The terminal granted to this channel by `pty-req` (then resized by
    /// `window-change`); used if the channel names a `pty = true` service.
    private(set) var terminal: TerminalRequest?
    var hasTerminal: Bool { terminal != nil }
    /// Client data left in libssh to be sent with more (see `coalesceBytes`).
    private(set) var holdsClientData = false

    var bytesIn: Int { inbound.bytesMoved }
    var bytesOut: Int { outbound.bytesMoved + (isSessionChannel ? errors.bytesMoved : 0) }
    let startedAt = MonotonicClock.now

    // What the worker has registered for this channel, so a registration is
    // removed by token before its descriptor closes.
    var registeredMain = PollRegistration.none
    var registeredStderr = PollRegistration.none
    /// A backend connect in flight for this channel (session forms).
    var pendingBackend: PendingBackend?
    var registeredConnect = PollRegistration.none

    init(
        id: UInt64, channel: SSHChannel, connection: Connection, isSessionChannel: Bool,
        phase: ChannelStateMachine.Phase
    ) {
        self.id = id
        self.output = ChannelOutput(channel: channel)
        self.connection = connection
        self.isSessionChannel = isSessionChannel
        self.machine = ChannelStateMachine(phase: phase, reportsExit: isSessionChannel)
        channel.install(delegate: self)
    }

    var finished: Bool { machine.isFinished }

    // MARK: Starting

    /// Names the channel (session forms name it with their request).
    func name(form: ChannelForm, service: String, label: String? = nil) {
        self.form = form
        self.service = service
        self.labelOverride = label
        meterNamed()
    }

    /// The session request (exec/subsystem/shell) this channel answers once its
    /// backend is ready or its answer is known.
    func holdRequest(_ request: SSHMessage) {
        pendingRequest = request
    }

    /// The backend is being connected: replies wait.
    func awaitBackend(_ pending: PendingBackend) {
        pendingBackend = pending
        apply(.connecting)
    }

    /// Names the channel while fived prepares its answer (the status table, which
    /// takes a pass of every worker); `respond` follows.
    func awaitAnswer(form: ChannelForm, service: String) {
        name(form: form, service: service)
        apply(.connecting)
    }

    /// Joins the channel to a ready backend (answering a waiting session request).
    func attach(_ backend: BackendConnection, preamble: [UInt8] = []) {
        self.backend = backend
        meterAttached()
        pendingBackend = nil
        if peerStoppedReadingOutput { backend.shutdownOutput() }
        if let request = pendingRequest {
            output.reply(request, success: true)
            pendingRequest = nil
        }
        if backend.errorsEnd != nil {
            errorsSink =
                isSessionChannel
                ? output.extendedData
                : StderrLineSink { [unowned self] line in
                    connection.logger.info(
                        "service stderr",
                        metadata: connection.channelMetadata(self).merging(["text": "\(String(decoding: line, as: UTF8.self))"]) { $1 })
                }
        } else {
            errors.endSource()
        }
        if !preamble.isEmpty { inbound.prepend(preamble) }
        // Bytes libssh took for the channel before it had a backend: read them first.
        inbound.sourceReady = true
        apply(.attached(awaitsExit: backend.process != nil))
        if let process = backend.process {
            process.owner = self
            if !process.isRunning { processExited() }
        }
        connection.worker.markDirty(self)
    }

    /// Answers from fived itself (help, status, refusals): fixed output, then exit
    /// status (session channels), EOF and close. A waiting session request is accepted first.
    func respond(form: ChannelForm, service: String, stdout: String, stderr: String = "", exitStatus: Int32) {
        self.form = form
        self.service = service
        meterNamed()
        pendingBackend = nil
        if let request = pendingRequest {
            output.reply(request, success: true)
            pendingRequest = nil
        }
        if !peerStoppedReadingOutput {
            outbound.prepend(Array(stdout.utf8))
            if isSessionChannel { errors.prepend(Array(stderr.utf8)) }
        }
        outbound.endSource()
        errors.endSource()
        errorsSink = output.extendedData
        outboundEndReported = true
        apply(.answering(exit: .status(exitStatus)))
        connection.worker.markDirty(self)
    }

    // MARK: SSHChannelDelegate (inside libssh's dispatch: record, do not re-enter)

    func channel(_ channel: SSHChannel, received data: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        // A connection being dropped (a protocol violation, perhaps by this very
        // packet) delivers nothing more: libssh hands over its whole buffer, and
        // bytes held back from before the violation are mixed with those after it.
        guard !connection.closing, let actions = apply(.peerData) else { return 0 }
        switch actions.first {
        case .deliver?:
            if isStderr { return data.count }  // extended data from a client has no meaning here
            break
        case .discard?:
            return data.count
        default:
            inbound.sourceReady = true
            return 0
        }
        guard let sink = backendEnd else {
            inbound.sourceReady = true
            return 0
        }
        if connection.isReading && data.count < Self.coalesceBytes && inbound.queue.isEmpty && inbound.sinkReady {
            inbound.sourceReady = true
            if !holdsClientData {
                holdsClientData = true
                inbound.held = true
                connection.heldDeliveries.hold(self)
            }
            return 0
        }
        releaseHold()
        let taken = inbound.offer(data, to: sink)
        if taken < data.count || inbound.sinkClosed { connection.worker.markDirty(self) }
        return taken
    }

    /// The connection's read pass is over (or this channel waited long enough):
    /// what it held back goes at the next pump.
    func releaseHeldData() {
        guard holdsClientData else { return }
        releaseHold()
        connection.worker.markDirty(self)
    }

    private func releaseHold() {
        holdsClientData = false
        inbound.held = false
    }

    func channelReceivedEOF(_ channel: SSHChannel) {
        apply(.peerEOF)
        releaseHold()
        inbound.sourceReady = true
        connection.worker.markDirty(self)
    }

    func channelReceivedClose(_ channel: SSHChannel) {
        releaseHold()
        inbound.sourceReady = true
        let undelivered = backendEnd != nil && !inbound.sinkClosed
        apply(.peerClose(undelivered: undelivered, now: MonotonicClock.now))
        if !finished, machine.outbound == .abandoned {
            // The program may still run (its exit status is awaited): as sshd closes
            // its pipes, its further output fails at once instead of filling the socket.
            for direction in [outbound, errors] {
                direction.queue.clear()
                direction.endSource()
            }
            backend?.shutdownOutput()
        }
        connection.worker.markDirty(self)
    }

    func channel(_ channel: SSHChannel, receivedSignal name: String) {
        // Delivered to an exec service's process group; no reply is possible (libssh answers none).
        guard !finished, let process = backend?.process, let number = ExitReport.signalNumber(name) else { return }
        process.signalGroup(number)
    }

    /// `eow@openssh.com` (OpenSSH PROTOCOL §2.1): the client's own output closed
    /// and it will discard anything more. As sshd does (nchan.c `chan_rcvd_eow`),
    /// fived stops reading the service's output: it drops what it holds, shuts
    /// the read side of the service's stream (an exec program's next write
    /// fails with EPIPE, so `yes` ends: by SIGPIPE, or, for a write that was
    /// already waiting on a full socket, which Linux fails without the signal,
    /// with its own error exit) and closes its stderr; the
    /// channel then ends as usual (EOF, exit status, CLOSE), and the client's
    /// own input still reaches the service. No reply: the request asks none.
    func peerStoppedReading() {
        guard let actions = apply(.peerRequest), actions.contains(.reply), !peerStoppedReadingOutput else { return }
        peerStoppedReadingOutput = true
        for direction in [outbound, errors] {
            direction.queue.clear()
            direction.endSource()
        }
        backend?.shutdownOutput()
        connection.worker.markDirty(self)
    }

    /// A channel request (other than exec/subsystem/shell, which the connection routes).
    func handleRequest(_ message: SSHMessage, _ request: SSHMessage.ChannelRequest) {
        guard let actions = apply(.peerRequest), actions.contains(.reply) else { return }
        switch request.type {
        case .pty(let asked):
            output.reply(message, success: grantTerminal(asked))
        case .windowChange(let columns, let rows, let widthPixels, let heightPixels):
            output.reply(message, success: resizeTerminal(columns: columns, rows: rows, widthPixels: widthPixels, heightPixels: heightPixels))
        default:
            // env, x11 and unknown requests are declined; the channel stays usable.
            output.reply(message, success: false)
        }
    }

    /// pty-req (RFC 4254 §6.2): granted once, on a session channel that has not
    /// named its service yet, when the caller may open a `pty = true` service
    /// (`AccessPolicy.grantsTerminal`) and the modes parse.
    private func grantTerminal(_ asked: SSHMessage.PseudoTerminal) -> Bool {
        guard isSessionChannel, terminal == nil, machine.phase == .awaitingRequest, form == nil,
            connection.grantsTerminal()
        else { return false }
        let modes: TerminalModes
        do {
            modes = try TerminalModes(encoded: asked.modes)
        } catch {
            connection.logger.info("pty request declined", metadata: connection.channelMetadata(self).merging(["reason": "\(error.message)"]) { $1 })
            return false
        }
        terminal = TerminalRequest(
            term: asked.term, columns: asked.columns, rows: asked.rows, widthPixels: asked.widthPixels,
            heightPixels: asked.heightPixels, modes: modes)
        return true
    }

    /// window-change (RFC 4254 §6.7): the new size goes to the running program's
    /// terminal (its foreground group gets SIGWINCH), or is kept for the one to start.
    private func resizeTerminal(columns: UInt32, rows: UInt32, widthPixels: UInt32, heightPixels: UInt32) -> Bool {
        guard var terminal else { return false }
        terminal.columns = columns
        terminal.rows = rows
        terminal.widthPixels = widthPixels
        terminal.heightPixels = heightPixels
        self.terminal = terminal
        guard let backend, backend.isTerminal, let master = backend.stream else { return true }
        let size = terminal.clampedSize
        do {
            try PseudoTerminal.setWindowSize(
                of: master.rawValue, rows: size.rows, columns: size.columns, widthPixels: size.widthPixels, heightPixels: size.heightPixels)
            return true
        } catch {
            return false
        }
    }

    /// What to do with an exec, subsystem or shell request.
    enum SessionRequestDisposition {
        /// Route it: no service is named yet.
        case route
        /// Refuse it (a second one on the same channel).
        case refuse
        /// Drop it unanswered: the channel is closed.
        case ignore
    }

    func sessionRequestDisposition() -> SessionRequestDisposition {
        guard let actions = apply(.peerRequest), actions.contains(.reply) else { return .ignore }
        return form == nil && machine.phase == .awaitingRequest ? .route : .refuse
    }

    // MARK: Descriptor events (inside dispatch: record only)

    func backendEvent(_ revents: UInt32) {
        // EPOLLHUP: the service closed its end entirely (for Unix sockets and the
        // socketpair of a published name; a TCP peer's close shows only as EOF).
        if revents & PollEvents.hungUp != 0 { backendHungUp = true }
        if revents & (PollEvents.readable | PollEvents.hangup) != 0 { outbound.sourceReady = true }
        if revents & (PollEvents.writable | PollEvents.hangup) != 0 { inbound.sinkReady = true }
        connection.worker.markDirty(self)
    }

    func stderrEvent(_ revents: UInt32) {
        errors.sourceReady = true
        connection.worker.markDirty(self)
    }

    /// The spawner reported the program's exit.
    func processExited() {
        if let status = backend?.process?.status {
            // A terminal's master reads EIO only once every holder of the slave
            // closed it; a program's background children may hold it for ever. As
            // sshd does, what the terminal holds at the exit is sent, then its output ends.
            if backend?.isTerminal == true { outbound.sourceReady = true }
            apply(.processExited(ExitReport(waitStatus: status)))
        }
        connection.worker.markDirty(self)
    }

    // MARK: The pump (top level only)

    /// Moves what can be moved, sends EOF/exit/close when due. Returns true when
    /// the channel wants to run again without a new event (a budget ran out).
    func pump() -> Bool {
        guard !finished, !connection.closing else { return false }
        if !channel.isOpen && !machine.peerSentClose {
            abort(.channelGone)
            return false
        }
        var again = false
        if let sink = backendEnd {
            again = inbound.pump(from: output.received, to: sink, budget: Self.inboundBudget)
            reportInbound()
        }
        guard !finished else { return false }
        again = pumpOutbound() || again
        guard !finished else { return false }
        if isSessionChannel && backendHungUp && outbound.sourceEnded && !inbound.sinkClosed && backendEnd != nil {
            // Nothing can reach a service that closed both ways: the client side is done
            // too. (A direct-tcpip channel waits for the client's EOF instead, as sshd's do.)
            inbound.closeSink(failure: nil)
            reportInbound()
        }
        return again && !finished
    }

    /// Returns true when output is still readable but the budget ran out.
    private func pumpOutbound() -> Bool {
        guard machine.maySend, machine.outbound == .open || machine.outbound == .ending else { return false }
        // stderr first: it is usually small and diagnostic.
        if let source = errorsSource, let sink = errorsSink {
            errors.pump(from: source, to: sink, budget: Self.pumpBudget)
        } else if let sink = errorsSink {
            errors.flush(to: sink)
        }
        guard !finished else { return false }
        var again = false
        if outbound.hasPending || (outbound.sourceReady && !outbound.sourceEnded),
            // Output libssh could not send yet means the client's socket is full: wait.
            // Within the budget, what the socket does not take waits in libssh (each
            // channel write tries a flush), bounded by the client's window.
            channel.session.flushOutput()
        {
            if let source = backendEnd {
                again = outbound.pump(from: source, to: output.data, budget: Self.pumpBudget)
                if let process = backend?.process, backend?.isTerminal == true, !process.isRunning,
                    !outbound.sourceReady, !outbound.sourceEnded
                {
                    outbound.endSource()  // read to would-block after the program's exit: that was all
                }
            } else {
                outbound.flush(to: output.data)
            }
        }
        if outbound.writeFailure != nil || errors.writeFailure != nil {
            abort(.sshWriteError)
            return false
        }
        reportOutbound()
        return again
    }

    private func reportInbound() {
        if inbound.sinkClosed {
            let failure = inbound.writeFailure.map { ChannelEndReason.localWriteError($0) }
            apply(.inboundAbandoned(failure: failure))
        } else if inbound.isDelivered, machine.inbound == .ending {
            apply(.inboundDelivered)
        }
    }

    private func reportOutbound() {
        if !outboundEndReported, outbound.sourceEnded, errors.sourceEnded {
            outboundEndReported = true
            if let log = errorsSink as? StderrLineSink { log.flush() }
            let failure = outbound.readFailure.map { ChannelEndReason.localReadError($0) }
            apply(.outboundEnded(failure: failure))
        }
        if machine.outbound == .ending, !outbound.hasPending, !errors.hasPending {
            apply(.outboundDelivered)
        }
    }

    /// Feeds one event to the machine and performs what it says. Returns the
    /// actions (the data and request dispositions are the caller's to act on),
    /// nil when the event broke the protocol (the connection is being dropped) or
    /// fived itself got out of step (the channel ends).
    @discardableResult
    private func apply(_ event: ChannelStateMachine.Event) -> [ChannelStateMachine.Action]? {
        do {
            let actions = try machine.handle(event)
            perform(actions)
            return actions
        } catch {
            if error.isPeerViolation {
                connection.protocolViolation(error, on: self)
            } else {
                connection.logger.error("channel state error", metadata: connection.channelMetadata(self).merging(["reason": "\(error)"]) { $1 })
                abort(.protocolViolation(error))
            }
            return nil
        }
    }

    private func perform(_ actions: [ChannelStateMachine.Action]) {
        for action in actions {
            switch action {
            case .deliver, .leave, .discard, .reply:
                break
            case .shutdownLocalInput:
                backend?.shutdownInput()
            case .sendExit(let report):
                if isSessionChannel { output.sendExit(report) }
            case .sendEOF:
                output.sendEOF()
            case .sendClose:
                output.close()
            case .release(let reason):
                finishRelay()
                connection.channelFinished(self, reason: reason)
            }
        }
    }

    /// Ends the channel now (connection closing, a write to the channel failed,
    /// the transport is gone).
    func abort(_ reason: ChannelEndReason) {
        apply(.abort(reason))
    }

    /// Called about every quarter second: deadlines, and a channel that moved
    /// nothing since the last call gives its buffers back, so idle channels hold
    /// no chunk memory.
    func tick(now: Int64) {
        apply(.tick(now: now))
        meterTick()
        let moved = bytesIn + bytesOut
        if moved == bytesMovedAtLastTrim {
            inbound.queue.releaseIfEmpty()
            outbound.queue.releaseIfEmpty()
            errors.queue.releaseIfEmpty()
        }
        bytesMovedAtLastTrim = moved
    }
    private var bytesMovedAtLastTrim = 0

    private func finishRelay() {
        releaseHold()
        if let log = errorsSink as? StderrLineSink { log.flush() }
        for direction in [inbound, outbound, errors] {
            direction.queue.clear()
            direction.queue.releaseIfEmpty()
        }
        pendingRequest = nil
    }

    /// Hands the backend over for teardown (closing descriptors, reaping or killing the child).
    func takeBackend() -> BackendConnection? {
        defer { backend = nil }
        return backend
    }

    // MARK: What the worker registers

    /// Poll events wanted on the backend stream now.
    var wantedMainEvents: UInt32 {
        guard !finished, let stream = backend?.stream, stream.isOpen else { return 0 }
        var ev: UInt32 = 0
        if !outbound.sourceEnded && !outbound.sourceReady && !outbound.hasPending && machine.maySend
            && channel.windowSize > 0 && channel.session.flushOutput()
        {
            ev |= PollEvents.readable
        }
        if !inbound.sinkClosed && !inbound.sinkReady && (inbound.hasPending || inbound.sourceReady) {
            ev |= PollEvents.writable
        }
        return ev
    }

    /// Poll events wanted on the child's stderr now.
    var wantedStderrEvents: UInt32 {
        guard !finished, errorsSource != nil, !errors.sourceEnded, !errors.sourceReady else { return 0 }
        if isSessionChannel && (channel.windowSize <= 0 || errors.hasPending) { return 0 }
        return PollEvents.readable
    }

    /// True once the child's stderr reached EOF (its descriptor may be closed after unregistering).
    var stderrFinished: Bool { errors.sourceEnded }

    /// Output is waiting or readable for the client (no I/O to find out).
    var hasOutputToSend: Bool {
        !finished
            && (outbound.hasPending || errors.hasPending
                || (outbound.sourceReady && !outbound.sourceEnded) || (errors.sourceReady && !errors.sourceEnded))
    }

    /// True when the channel waits on the SSH side (window or pending output)
    /// and must be re-checked after every poll: libssh 0.10.6 does not report a
    /// reopened window.
    var waitsOnSSH: Bool {
        guard !finished, machine.maySend, machine.outbound != .ended else { return false }
        let hasOutput = hasOutputToSend
        if !hasOutput && backend != nil && !outbound.sourceEnded {
            return channel.windowSize <= 0 || !channel.session.flushOutput()
        }
        return hasOutput
    }
}

import CSystem
import FivedCore
import LibSSH
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One SSH channel joined to one backend: the byte pump.
///
/// It reads only while the other side can take it, and turns EOF into a
/// half-close. libssh callbacks and descriptor events only record what happened
/// and mark the channel dirty; the worker calls `pump()` between polls, where
/// libssh may safely be re-entered (LIBSSH-NOTES: flushing calls poll the
/// session's poll context, which runs this session's callbacks). Memory per channel is bounded: `chunkSize` each way plus what libssh
/// itself buffers up to the SSH window.
final class ServiceChannel: SSHChannelDelegate {
    /// Largest read from a backend or from libssh's buffer in one go. 256 KiB
    /// rather than 64: per GiB downloaded, a quarter of the reads, channel writes
    /// and socket flushes (64 KiB cost ~15% more CPU in 1 GiB downloads through
    /// bench/profile.sh).
    static let chunkSize = 256 * 1024
    /// Bytes moved toward the client per channel per pump, so one busy channel
    /// cannot starve the others on its worker.
    static let pumpBudget = 512 * 1024
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
    let channel: SSHChannel
    unowned let connection: Connection
    let isSessionChannel: Bool
    private(set) var form: ChannelForm?
    private(set) var service: String = "-"
    /// The form for logs; forwarded-tcpip (toward a publisher) is not a ChannelForm.
    var formLabel: String { labelOverride ?? form?.rawValue ?? "session" }
    private var labelOverride: String?
    private(set) var backend: BackendConnection?
    private var forwardsStderrToLog = false

    // Client -> backend.
    private var clientEOF = false
    private var libsshHasBuffered = false
    /// Client data left in libssh to be sent with more (see `coalesceBytes`).
    private(set) var holdsClientData = false
    private var toBackend = ByteQueue(capacity: chunkSize)
    private var backendWriteClosed = false
    private var backendWritable = true
    private var backendHungUp = false

    // Backend -> client.
    private var toClient = ByteQueue(capacity: chunkSize)
    private var toClientStderr = ByteQueue(capacity: stderrChunkSize)
    private var backendReadable = false
    private var stderrReadable = false
    private var backendEOF = false
    private var stderrEOF = true
    private var stderrLine: [UInt8] = []
    private var eofSent = false
    private var waitStatus: Int32?
    private var presetExitStatus: Int32?
    private var exitReported = false
    private var backendFailed = false

    // Lifetime.
    private(set) var clientClosed = false
    private(set) var finished = false
    private var closeReason: String?
    private(set) var bytesIn = 0
    private(set) var bytesOut = 0
    let startedAt = MonotonicClock.now

    // What the worker has registered for this channel: the poller token and
    // events, so a registration is removed by token before its descriptor closes.
    var registeredMain: Poller.Registration = (0, 0)
    var registeredStderr: Poller.Registration = (0, 0)
    var registeredPid: UInt64 = 0

    init(id: UInt64, channel: SSHChannel, connection: Connection, isSessionChannel: Bool) {
        self.id = id
        self.channel = channel
        self.connection = connection
        self.isSessionChannel = isSessionChannel
    }

    // MARK: Starting

    /// Joins the channel to a connected backend.
    func attach(_ backend: BackendConnection, form: ChannelForm, service: String, preamble: [UInt8] = [], label: String? = nil) {
        self.form = form
        self.labelOverride = label
        // A channel adopted after libssh already took data for it: drain that first.
        if label != nil { libsshHasBuffered = true }
        self.service = service
        self.backend = backend
        self.toBackend.set(preamble)
        self.stderrEOF = backend.stderrFD < 0
        self.forwardsStderrToLog = !isSessionChannel
        self.backendReadable = true
        self.stderrReadable = backend.stderrFD >= 0
        connection.worker.markDirty(self)
    }

    /// Answers from fived itself (help, refusals): fixed output, then exit status
    /// (session channels), EOF and close.
    func respond(form: ChannelForm, service: String, stdout: String, stderr: String = "", exitStatus: Int32) {
        self.form = form
        self.service = service
        toClient.set(Array(stdout.utf8))
        if isSessionChannel { toClientStderr.set(Array(stderr.utf8)) }
        backendEOF = true
        stderrEOF = true
        presetExitStatus = exitStatus
        connection.worker.markDirty(self)
    }

    /// Names the channel while fived prepares its answer (the status table, which
    /// takes a pass of every worker); `respond` follows.
    func awaitAnswer(form: ChannelForm, service: String) {
        self.form = form
        self.service = service
    }

    // MARK: SSHChannelDelegate (inside libssh's dispatch: record, do not re-enter)

    func channel(_ channel: SSHChannel, received data: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        if isStderr || finished { return data.count }  // extended data from a client has no meaning here
        guard let backend, backend.fd >= 0 else {
            // Session channel before its request: leave it in libssh (ordered) until a backend exists.
            libsshHasBuffered = true
            return 0
        }
        if backendWriteClosed {
            return data.count  // the backend stopped reading for good; discard as sshd does
        }
        if !toBackend.isEmpty || !backendWritable {
            libsshHasBuffered = true
            connection.worker.markDirty(self)
            return 0
        }
        if connection.isReading && data.count < Self.coalesceBytes {
            libsshHasBuffered = true
            if !holdsClientData {
                holdsClientData = true
                connection.heldDeliveries.hold(self)
            }
            return 0
        }
        holdsClientData = false
        let n = send(backend.fd, data.baseAddress, data.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        if n < 0 {
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == EINTR {
                backendWritable = false
                libsshHasBuffered = true
                connection.worker.markDirty(self)
                return 0
            }
            backendWriteFailed(errno: e)
            return data.count
        }
        bytesIn += n
        if n < data.count {
            backendWritable = false
            libsshHasBuffered = true
            connection.worker.markDirty(self)
        } else {
            libsshHasBuffered = false
        }
        return n
    }

    /// The connection's read pass is over (or this channel waited long enough):
    /// what it held back goes at the next pump.
    func releaseHeldData() {
        guard holdsClientData else { return }
        holdsClientData = false
        connection.worker.markDirty(self)
    }

    func channelReceivedEOF(_ channel: SSHChannel) {
        clientEOF = true
        connection.worker.markDirty(self)
    }

    func channelReceivedClose(_ channel: SSHChannel) {
        clientClosed = true
        closeDrainDeadline = MonotonicClock.now + Self.closeDrainMilliseconds
        connection.worker.markDirty(self)
    }

    /// How long a closed channel may take to hand its last bytes to a slow backend.
    static let closeDrainMilliseconds: Int64 = 5000
    private(set) var closeDrainDeadline: Int64 = .max

    /// True while a closed channel still delivers its last bytes (the worker
    /// re-runs it at its deadline).
    var isDrainingAfterClose: Bool { clientClosed && !finished }

    func channel(_ channel: SSHChannel, exec command: String) -> Bool {
        guard form == nil else { return false }
        return connection.routeSessionRequest(self, form: .exec, requested: command)
    }

    func channel(_ channel: SSHChannel, subsystem name: String) -> Bool {
        guard form == nil else { return false }
        return connection.routeSessionRequest(self, form: .subsystem, requested: name)
    }

    func channelShell(_ channel: SSHChannel) -> Bool {
        guard form == nil else { return false }
        return connection.routeSessionRequest(self, form: .shell, requested: nil)
    }

    // MARK: Descriptor events (inside dispatch: record only)

    func backendEvent(_ revents: UInt32) {
        // EPOLLHUP: the service closed its end entirely (for Unix sockets and the
        // socketpair of a published name; a TCP peer's close shows only as EOF).
        if revents & UInt32(EPOLLHUP.rawValue) != 0 { backendHungUp = true }
        if revents & (Poller.readable | Poller.hangup) != 0 { backendReadable = true }
        if revents & (Poller.writable | Poller.hangup) != 0 { backendWritable = true }
        connection.worker.markDirty(self)
    }

    func stderrEvent(_ revents: UInt32) {
        stderrReadable = true
        connection.worker.markDirty(self)
    }

    func processExitEvent(_ revents: UInt32) {
        if let status = backend?.reap() {
            waitStatus = status
        }
        connection.worker.markDirty(self)
    }

    // MARK: The pump (top level only)

    /// Moves what can be moved, sends EOF/exit-status/close when due.
    /// Returns true when the channel wants to run again without a new event
    /// (budget exhausted with data still readable).
    func pump() -> Bool {
        if finished { return false }
        if clientClosed {
            // The client closed right behind its last data (OpenSSH sends data, EOF
            // and CLOSE back to back): deliver what it sent first. libssh keeps a
            // channel with unread data open (delayed_close), so it can still be read.
            clientEOF = true
            let more = pumpToBackend()
            let delivering = backend != nil && !backendWriteClosed && (libsshHasBuffered || !toBackend.isEmpty)
            if delivering && MonotonicClock.now < closeDrainDeadline {
                return more
            }
            finish(reason: closeReason ?? (delivering ? "client closed; the backend did not take the rest in time" : (eofSent ? "closed" : "client closed")))
            return false
        }
        if !channel.isOpen {
            finish(reason: "channel gone")
            return false
        }
        let moreToBackend = pumpToBackend()
        let again = pumpToClient() || moreToBackend
        if finished { return false }
        if backendHungUp && backendEOF && !backendWriteClosed {
            // Nothing can reach a service that closed both ways: the client side is done too.
            backendWriteFailed(errno: EPIPE)
        }
        settleEOF()
        if isComplete {
            finish(reason: closeReason ?? "closed")
            return false
        }
        return again
    }

    /// Returns true when the round bound stopped it with data still to move.
    private func pumpToBackend() -> Bool {
        guard let backend, backend.fd >= 0, !backendWriteClosed else { return false }
        var rounds = 0
        while true {
            if rounds == 8 { return backendWritable && (libsshHasBuffered || !toBackend.isEmpty) }
            rounds += 1
            if !toBackend.isEmpty {
                guard backendWritable else { return false }
                let n = toBackend.drain { send(backend.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                if n < 0 {
                    let e = errno
                    if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { backendWritable = false; return false }
                    backendWriteFailed(errno: e)
                    return false
                }
                if !toBackend.isEmpty { backendWritable = false; return false }
                continue
            }
            guard libsshHasBuffered, !holdsClientData || clientEOF else { break }
            var got: Int? = 0
            var failed = false
            toBackend.fill(upTo: Self.chunkSize) { buf in
                do {
                    got = try channel.readBuffered(into: buf)
                } catch {
                    failed = true
                    got = 0
                }
                return got ?? 0
            }
            if failed { closeReason = closeReason ?? "ssh read error"; libsshHasBuffered = false; break }
            guard let n = got else { libsshHasBuffered = false; break }  // EOF and drained
            if n == 0 { libsshHasBuffered = false; break }
            bytesIn += n
        }
        if clientEOF, !libsshHasBuffered, toBackend.isEmpty, !backendWriteClosed {
            // Client EOF, everything delivered: half-close toward the service.
            _ = shutdown(backend.fd, Int32(SHUT_WR))
            backendWriteClosed = true
        }
        return false
    }

    /// Returns true when data is still readable but the budget ran out.
    private func pumpToClient() -> Bool {
        guard !eofSent else { return false }
        // stderr first for session channels: it is usually small and diagnostic.
        if !flush(toClientStderr, stderr: true) { return false }
        if !flush(toClient, stderr: false) { return false }
        if let backend, stderrReadable, !stderrEOF, backend.stderrFD >= 0 {
            drainStderr(backend)
            if !flush(toClientStderr, stderr: true) { return false }
        }
        guard let backend, backendReadable, !backendEOF, backend.fd >= 0 else { return false }
        // Output libssh could not send yet means the client's socket is full: wait.
        // Within the budget, what the socket does not take waits in libssh (each
        // channel write tries a flush), bounded by the client's window.
        if !channel.session.flushOutput() { return false }
        var budget = Self.pumpBudget
        while budget > 0 {
            let window = channel.windowSize
            if window <= 0 { return false }
            let n = toClient.fill(upTo: min(window, Self.chunkSize, budget)) { read(backend.fd, $0.baseAddress, $0.count) }
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { backendReadable = false } else {
                    backendEOF = true
                    backendFailed = true
                    closeReason = closeReason ?? "backend read error: \(String(cString: strerror(e)))"
                }
                return false
            }
            if n == 0 {
                backendEOF = true
                return false
            }
            budget -= n
            if !flush(toClient, stderr: false) { return false }
        }
        return backendReadable
    }

    /// Writes what `queue` holds to the channel (as extended data for stderr);
    /// true when none is left.
    private func flush(_ queue: ByteQueue, stderr: Bool) -> Bool {
        while !queue.isEmpty {
            let window = channel.windowSize
            if window <= 0 { return false }
            let wanted = min(queue.count, window)
            var failed = false
            let written = queue.drain(limit: window) { buf in
                do { return try channel.write(buf, stderr: stderr) } catch { failed = true; return 0 }
            }
            if failed { return writeFailed() }
            bytesOut += written
            if written < wanted { return false }  // re-keying or window shrank: try again later
            if finished || clientClosed { return false }
        }
        return true
    }

    private func writeFailed() -> Bool {
        closeReason = closeReason ?? "ssh write error"
        finish(reason: closeReason!)
        return false
    }

    private func drainStderr(_ backend: BackendConnection) {
        var buf = [UInt8](repeating: 0, count: Self.stderrChunkSize)
        while toClientStderr.isEmpty {
            let n = read(backend.stderrFD, &buf, buf.count)
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { stderrReadable = false; return }
                stderrEOF = true  // closed by the worker once unregistered
                return
            }
            if n == 0 {
                stderrEOF = true
                flushStderrLine(force: true)
                return
            }
            if forwardsStderrToLog {
                logStderr(buf[0..<n])
            } else {
                toClientStderr.set(Array(buf[0..<n]))
                return
            }
        }
    }

    private func logStderr(_ bytes: ArraySlice<UInt8>) {
        for b in bytes {
            if b == 0x0A { flushStderrLine(force: true); continue }
            if stderrLine.count < 1024 { stderrLine.append(b) } else { flushStderrLine(force: true) }
        }
    }

    private func flushStderrLine(force: Bool) {
        guard !stderrLine.isEmpty else { return }
        connection.logger.info("service stderr", metadata: connection.channelMetadata(self).merging(["text": "\(String(decoding: stderrLine, as: UTF8.self))"]) { $1 })
        stderrLine.removeAll(keepingCapacity: true)
    }

    /// Sends exit-status and EOF once the backend's output is fully delivered.
    private func settleEOF() {
        guard !eofSent, backendEOF, stderrEOF,
              toClient.isEmpty, toClientStderr.isEmpty else { return }
        if isSessionChannel, !exitReported, let status = exitStatusIfKnown {
            reportExit(status)
        }
        channel.sendEOF()
        eofSent = true
    }

    /// The exit to report on a session channel, once known.
    private var exitStatusIfKnown: ExitReport? {
        if let preset = presetExitStatus { return .status(preset) }
        guard let backend else { return nil }
        if backend.pid != nil {
            guard let status = waitStatus else { return nil }
            // Linux wait-status layout (the W* macros are not visible from Swift).
            let low = status & 0x7f
            if low != 0 && low != 0x7f { return .signal(low) }
            return .status((status >> 8) & 0xff)
        }
        return .status(backendFailed ? 1 : 0)
    }

    private enum ExitReport {
        case status(Int32)
        case signal(Int32)
    }

    private func reportExit(_ report: ExitReport) {
        exitReported = true
        switch report {
        case .status(let s): channel.sendExitStatus(s)
        case .signal(let sig): channel.sendExitSignal(ServiceChannel.signalName(sig))
        }
    }

    /// Done when the backend side has said everything (EOF, and exit status on
    /// session channels) and the client side is finished: for exec backends the
    /// process has exited; for sockets the client's EOF was delivered (or the
    /// service stopped reading for good).
    private var isComplete: Bool {
        guard eofSent else { return false }
        if let backend, backend.pid != nil {
            guard waitStatus != nil else { return false }
            if isSessionChannel && !exitReported, let status = exitStatusIfKnown { reportExit(status) }
            return true
        }
        if isSessionChannel && !exitReported {
            if let status = exitStatusIfKnown { reportExit(status) } else { return false }
        }
        if presetExitStatus != nil { return true }
        return backendWriteClosed || (backend == nil)
    }

    private func backendWriteFailed(errno e: Int32) {
        backendWriteClosed = true
        libsshHasBuffered = false
        toBackend.clear()
        if e != EPIPE && e != ECONNRESET {
            closeReason = closeReason ?? "backend write error: \(String(cString: strerror(e)))"
        }
    }

    /// Closes the channel and releases the backend; logs the channel's end once.
    func finish(reason: String) {
        guard !finished else { return }
        finished = true
        flushStderrLine(force: true)
        toBackend.clear()
        toBackend.releaseIfEmpty()
        toClient.clear()
        toClient.releaseIfEmpty()
        toClientStderr.clear()
        toClientStderr.releaseIfEmpty()
        if !clientClosed || channel.isOpen {
            channel.close()
        }
        connection.channelFinished(self, reason: reason)
    }

    /// Called about every quarter second: a channel that moved nothing since the
    /// last call gives its buffers back, so idle channels hold no chunk memory.
    func trimIdleBuffers() {
        let moved = bytesIn + bytesOut
        if moved == bytesMovedAtLastTrim {
            toBackend.releaseIfEmpty()
            toClient.releaseIfEmpty()
            toClientStderr.releaseIfEmpty()
        }
        bytesMovedAtLastTrim = moved
    }
    private var bytesMovedAtLastTrim = 0

    /// Hands the backend over for teardown (closing descriptors, reaping or killing the child).
    func takeBackend() -> BackendConnection? {
        defer { backend = nil }
        return backend
    }

    // MARK: What the worker registers

    /// Poll events wanted on the backend stream now.
    var wantedMainEvents: UInt32 {
        guard !finished, let backend, backend.fd >= 0 else { return 0 }
        var ev: UInt32 = 0
        if !backendEOF && !eofSent && !backendReadable && toClient.isEmpty
            && channel.windowSize > 0 && channel.session.flushOutput() {
            ev |= Poller.readable
        }
        if !backendWriteClosed && !backendWritable && (!toBackend.isEmpty || libsshHasBuffered) {
            ev |= Poller.writable
        }
        return ev
    }

    /// Poll events wanted on the child's stderr now.
    var wantedStderrEvents: UInt32 {
        guard !finished, let backend, backend.stderrFD >= 0, !stderrEOF, !stderrReadable else { return 0 }
        if !forwardsStderrToLog && (channel.windowSize <= 0 || !toClientStderr.isEmpty) { return 0 }
        return Poller.readable
    }

    /// Whether the child's pidfd should be watched.
    var wantsProcessEvents: Bool {
        guard !finished, let backend else { return false }
        return backend.childRunning && waitStatus == nil
    }

    /// True once the child's stderr reached EOF (its descriptor may be closed after unregistering).
    var stderrFinished: Bool { stderrEOF }

    /// True when the channel waits on the SSH side (window or pending output)
    /// and must be re-checked after every poll: libssh 0.10.6 does not report a
    /// reopened window.
    var waitsOnSSH: Bool {
        guard !finished, !eofSent else { return false }
        let hasOutput = (backendReadable && !backendEOF) || !toClient.isEmpty
            || !toClientStderr.isEmpty || (stderrReadable && !stderrEOF)
        if !hasOutput && backend != nil && !backendEOF { return channel.windowSize <= 0 || !channel.session.flushOutput() }
        return hasOutput
    }

    static func signalName(_ sig: Int32) -> String {
        switch sig {
        case SIGABRT: return "ABRT"
        case SIGALRM: return "ALRM"
        case SIGFPE: return "FPE"
        case SIGHUP: return "HUP"
        case SIGILL: return "ILL"
        case SIGINT: return "INT"
        case SIGKILL: return "KILL"
        case SIGPIPE: return "PIPE"
        case SIGQUIT: return "QUIT"
        case SIGSEGV: return "SEGV"
        case SIGTERM: return "TERM"
        case SIGUSR1: return "USR1"
        case SIGUSR2: return "USR2"
        default: return "SIG\(sig)"
        }
    }
}

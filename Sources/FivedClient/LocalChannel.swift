import FivedCore
import FivedRuntime
import FivedSystem
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// One SSH channel joined to local descriptors (a socket, or stdin and stdout):
/// the same state machine and relay as the daemon's channels, with the server
/// as the peer. libssh callbacks and descriptor events only record what
/// happened; `step()` runs between polls, where libssh may be re-entered.
/// Memory stays bounded: one chunk each way plus libssh's window.
final class LocalChannel: SSHChannelDelegate {
    /// Largest single read from either side (as the daemon's channels).
    static let chunkSize = 256 * 1024
    /// Bytes moved toward the server per step, so one busy channel cannot starve the rest.
    static let stepBudget = 512 * 1024

    let output: ChannelOutput
    var channel: SSHChannel { output.channel }
    let service: String
    /// Where local bytes come from; nil for none (EOF is sent at once).
    let readFD: Int32?
    /// Where channel bytes go.
    let writeFD: Int32
    private let writeIsSocket: Bool
    /// Whether `teardown` closes the descriptors (sockets yes, stdio no).
    let ownsDescriptors: Bool
    let originator: (host: String, port: UInt16)
    private(set) var machine: ChannelStateMachine
    /// The channel open is in flight (`-L`, stdio); `advanceOpen` finishes it.
    private(set) var opening: Bool
    /// The local connect is in flight (`-R`); finished when the socket polls writable.
    private(set) var connectingLocally: Bool
    /// The server's reason when it refused the open.
    private(set) var refusal: String?
    private(set) var endReason: ChannelEndReason?
    let createdAt = MonotonicClock.now

    let inbound = RelayDirection(chunkSize: chunkSize)
    let outbound = RelayDirection(chunkSize: chunkSize)
    /// Where channel bytes go, and (when reading) where local bytes come from: one
    /// end on a socket, stdout and stdin apart.
    private let localSink: DescriptorEnd
    private let localSource: DescriptorEnd?

    var bytesToServer: Int { outbound.bytesMoved }
    var bytesFromServer: Int { inbound.bytesMoved }
    var isFinished: Bool { machine.isFinished }

    init(
        channel: SSHChannel, service: String, readFD: Int32?, writeFD: Int32, ownsDescriptors: Bool,
        originator: (host: String, port: UInt16), opening: Bool, connectingLocally: Bool = false
    ) {
        self.output = ChannelOutput(channel: channel)
        self.service = service
        self.readFD = readFD
        self.writeFD = writeFD
        self.writeIsSocket = Syscall.isSocket(writeFD)
        self.ownsDescriptors = ownsDescriptors
        self.originator = originator
        self.opening = opening
        self.connectingLocally = connectingLocally
        let sink = DescriptorEnd(fd: writeFD, isSocket: writeIsSocket)
        self.localSink = sink
        self.localSource = readFD.map { $0 == writeFD ? sink : DescriptorEnd(fd: $0) }
        self.machine = ChannelStateMachine(phase: opening || connectingLocally ? .awaitingRequest : .relaying, reportsExit: false)
        if readFD == nil { outbound.endSource() }
        if connectingLocally { inbound.sinkReady = false }
        channel.install(delegate: self)
        if opening || connectingLocally { apply(.connecting) }
    }

    // MARK: Opening

    /// Advances the channel open; true when it is settled (open or refused).
    func advanceOpen() -> Bool {
        guard opening else { return true }
        do {
            guard
                try channel.openForward(
                    host: service, port: 1, originatorHost: originator.host,
                    originatorPort: Int32(originator.port)) == .open
            else { return false }
            opening = false
            apply(.attached(awaitsExit: false))
            if closeArrivedWhileOpening {
                apply(.peerClose(undelivered: true, now: MonotonicClock.now))
            }
            return true
        } catch {
            opening = false
            refusal = Self.reason(from: error.message)
            output.abandon()
            apply(.abort(.refused(refusal!)))
            return true
        }
    }

    /// libssh reports "Channel opening failure: channel 3 error (1) TEXT": keep TEXT and the code's meaning.
    static func reason(from text: String) -> String {
        guard let range = text.range(of: "error (") else { return text }
        let rest = text[range.upperBound...]
        guard let close = rest.firstIndex(of: ")") else { return text }
        let code = rest[..<close]
        let message = String(rest[rest.index(after: close)...].drop { $0 == " " }).trimmingTrailingSpaces()
        let meaning: String
        switch code {
        case "1": meaning = "administratively prohibited"
        case "2": meaning = "connect failed"
        case "3": meaning = "unknown channel type"
        case "4": meaning = "resource shortage"
        default: meaning = "code \(code)"
        }
        return message.isEmpty ? meaning : "\(message) (\(meaning))"
    }

    // MARK: SSHChannelDelegate (inside libssh's dispatch: record, write directly at most)

    func channel(_ channel: SSHChannel, received data: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        guard let actions = apply(.peerData) else { return 0 }
        switch actions.first {
        case .deliver?:
            if isStderr { return data.count }
            return inbound.offer(data, to: localSink)
        case .discard?:
            return data.count
        default:
            inbound.sourceReady = true
            return 0
        }
    }

    func channelReceivedEOF(_ channel: SSHChannel) {
        apply(.peerEOF)
        inbound.sourceReady = true
    }

    func channelReceivedClose(_ channel: SSHChannel) {
        inbound.sourceReady = true
        // Inside a blocking open, the confirmation, data, EOF and CLOSE can all
        // arrive in one read: ending the channel here would make libssh report
        // the open as failed. The CLOSE is applied once the open has returned.
        if opening {
            closeArrivedWhileOpening = true
            return
        }
        apply(.peerClose(undelivered: !inbound.sinkClosed, now: MonotonicClock.now))
    }
    private var closeArrivedWhileOpening = false

    func channel(_ channel: SSHChannel, receivedSignal name: String) {}

    /// A poll event on one of the local descriptors.
    func localEvent(_ revents: Int16) {
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { outbound.sourceReady = true }
        if revents & Int16(POLLOUT | POLLHUP | POLLERR) != 0 { inbound.sinkReady = true }
    }

    // MARK: The pump (top level only)

    /// Moves what can be moved and sends EOF/close when due. Returns true when
    /// it stopped on its budget with more to do.
    func step() -> Bool {
        if connectingLocally { finishConnect() }
        guard !opening, !connectingLocally, !isFinished else { return false }
        if !channel.isOpen && !machine.peerSentClose {
            apply(.abort(.channelGone))
            return false
        }
        var again = inbound.pump(from: output.received, to: localSink, budget: 8 * Self.chunkSize)
        report()
        guard !isFinished else { return false }
        if let localSource, machine.maySend, channel.session.flushOutput() {
            again = outbound.pump(from: localSource, to: output.data, budget: Self.stepBudget) || again
        } else if machine.maySend {
            outbound.flush(to: output.data)
        }
        if outbound.writeFailure != nil {
            apply(.abort(.sshWriteError))
            return false
        }
        report()
        return again && !isFinished
    }

    private func finishConnect() {
        guard inbound.sinkReady || outbound.sourceReady else { return }
        let e = Socket.connectResult(writeFD)
        connectingLocally = false
        if e != 0 {
            apply(.abort(.localConnectFailed(errnoText(e))))
            return
        }
        inbound.sinkReady = true
        outbound.sourceReady = true
        apply(.attached(awaitsExit: false))
    }

    private func report() {
        if inbound.sinkClosed {
            // The local reader is gone (stdout closed, the socket reset): the channel has no point any more.
            apply(.abort(.localWriteError(inbound.writeFailure ?? errnoText(EPIPE))))
            return
        } else if inbound.isDelivered, machine.inbound == .ending {
            apply(.inboundDelivered)
        }
        if outbound.sourceEnded, machine.outbound == .open {
            apply(.outboundEnded(failure: outbound.readFailure.map { .localReadError($0) }))
        }
        if machine.outbound == .ending, !outbound.hasPending {
            apply(.outboundDelivered)
        }
    }

    @discardableResult
    private func apply(_ event: ChannelStateMachine.Event) -> [ChannelStateMachine.Action]? {
        let actions: [ChannelStateMachine.Action]
        do {
            actions = try machine.handle(event)
        } catch {
            if let more = try? machine.handle(.abort(.protocolViolation(error))) { perform(more) }
            return nil
        }
        perform(actions)
        return actions
    }

    private func perform(_ actions: [ChannelStateMachine.Action]) {
        for action in actions {
            switch action {
            case .shutdownLocalInput: closeLocalWrite()
            case .sendEOF: output.sendEOF()
            case .sendClose: output.close()
            case .release(let reason): endReason = endReason ?? reason
            case .deliver, .leave, .discard, .reply, .sendExit: break
            }
        }
    }

    /// The server's EOF, delivered: half-close toward the local side.
    private func closeLocalWrite() {
        if writeIsSocket {
            Syscall.shutdownWrite(writeFD)
        } else if !ownsDescriptors {
            // stdout: point it at /dev/null so the reader sees EOF while the number stays valid.
            let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
            if null >= 0 {
                _ = dup2(null, writeFD)
                Syscall.close(null)
            }
        }
    }

    /// Ends the channel (once) for `reason`.
    func finish(_ reason: ChannelEndReason) {
        apply(.abort(reason))
    }

    /// The end as fived-connect's diagnostics say it.
    var endDescription: String {
        switch endReason {
        case nil: return "open"
        case .peerClosed?: return "closed by the server"
        case .channelGone?: return "channel lost"
        case .localWriteError(let why)?: return "local write failed: \(why)"
        case .localReadError?: return "local read error"
        case let reason?: return reason.description
        }
    }

    // MARK: What the loop registers

    /// Poll events wanted on `readFD` and on `writeFD` now.
    var wantedEvents: (read: Int16, write: Int16) {
        guard !isFinished, !opening else { return (0, 0) }
        if connectingLocally { return (0, Int16(POLLOUT)) }
        var r: Int16 = 0
        var w: Int16 = 0
        if localSource != nil && !outbound.sourceEnded && !outbound.sourceReady && !outbound.hasPending
            && machine.maySend && channel.windowSize > 0 && channel.session.flushOutput()
        {
            r = Int16(POLLIN)
        }
        if !inbound.sinkClosed && !inbound.sinkReady && (inbound.hasPending || inbound.sourceReady) {
            w = Int16(POLLOUT)
        }
        return (r, w)
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

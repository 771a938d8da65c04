/// The life of one channel, as a value: which side may still send, what is due
/// next (half-closes, exit status, EOF, CLOSE), and why it ended. Events go in
/// (`handle`), actions come out; the owner performs the actions and reports what
/// its byte relay did. No I/O here.
///
/// The same machine serves every relayed stream in fived: a daemon channel
/// between an SSH client and a service, a fived-connect channel between the
/// server and a local socket or stdio, and a plain TCPMUX connection. "Peer" is
/// the remote side (the SSH client, the server, the TCPMUX client), "local end"
/// the near one (the service, the local socket). Inbound bytes flow from the
/// peer to the local end, outbound bytes the other way.
///
/// What the type guarantees, whatever the owner or the peer does:
/// - Nothing is sent on a channel after its CLOSE: once `sendClose` was emitted,
///   no action sends again, requests get no reply (`reply` is never emitted) and
///   the peer's late data is left untouched (`leave`, so libssh sends no window
///   adjust for it).
/// - CLOSE is emitted exactly once and is always followed by `release`.
/// - Data, EOF or requests the peer sends after its own EOF or CLOSE, and a
///   second EOF or CLOSE, are protocol violations (RFC 4254 §5.3): `handle`
///   throws, and the owner drops the connection.
/// - A session channel reports the exit (`sendExit`) at most once, before its
///   EOF when the exit is known by then.
///
/// Modelled on swift-nio-ssh's `ChildChannelStateMachine`, which keeps the same
/// facts in one value whose transitions throw on a protocol violation.
public struct ChannelStateMachine: Sendable, Equatable {
    /// Where the channel is in its life.
    public enum Phase: Sendable, Equatable {
        /// Open, waiting for the request that names the service (session channels before exec/subsystem/shell).
        case awaitingRequest
        /// The local end is being made ready: a backend connect, a process start,
        /// an answer being gathered, or (fived-connect) the channel open in flight.
        case connecting
        /// Bytes flow both ways between the peer and the local end.
        case relaying
        /// fived answers by itself (help, status, refusals): fixed output, then exit, EOF and CLOSE.
        case answering
        /// The peer closed; what it sent before is still being delivered, until `deadline` (ms, monotonic).
        case draining(deadline: Int64)
        /// CLOSE was sent (or the channel is gone) for this reason; nothing more is sent.
        case finished(ChannelEndReason)
    }

    /// One direction of the relay.
    public enum Flow: Sendable, Equatable {
        /// Bytes may still come.
        case open
        /// The source ended (EOF); what it sent is still being delivered.
        case ending
        /// The end was passed on (EOF sent on the channel, or the local end's input shut down).
        case ended
        /// The sink stopped taking bytes for good; anything more is dropped.
        case abandoned
    }

    /// A break of the channel protocol, or an event the owner reported out of order.
    public enum Violation: Error, Sendable, Equatable, CustomStringConvertible {
        /// CHANNEL_DATA after the peer's EOF (RFC 4254 §5.3).
        case dataAfterEOF
        /// CHANNEL_DATA after the peer's CLOSE.
        case dataAfterClose
        /// CHANNEL_EOF after the peer's CLOSE.
        case eofAfterClose
        /// A second CHANNEL_EOF.
        case secondEOF
        /// A channel request after the peer's CLOSE.
        case requestAfterClose
        /// A second CHANNEL_CLOSE.
        case secondClose
        /// The owner reported `event` where the machine was in `phase`: a bug in fived, not the peer.
        case unexpected(event: String, phase: String)

        /// True for a break of the protocol by the peer (not one of fived's own).
        public var isPeerViolation: Bool {
            if case .unexpected = self { return false }
            return true
        }

        public var description: String {
            switch self {
            case .dataAfterEOF: return "data after EOF"
            case .dataAfterClose: return "data after CLOSE"
            case .eofAfterClose: return "EOF after CLOSE"
            case .secondEOF: return "a second EOF"
            case .requestAfterClose: return "a channel request after CLOSE"
            case .secondClose: return "a second CLOSE"
            case .unexpected(let event, let phase): return "\(event) while \(phase)"
            }
        }
    }

    /// What happened.
    public enum Event: Sendable, Equatable {
        /// The local end is being made ready (from `awaitingRequest`).
        case connecting
        /// The local end is ready; `awaitsExit` when it is a process whose exit ends the channel.
        case attached(awaitsExit: Bool)
        /// fived answers by itself; its output is queued and will end with `exit`.
        case answering(exit: ExitReport)
        /// CHANNEL_DATA (or extended data) arrived from the peer.
        case peerData
        /// CHANNEL_EOF arrived.
        case peerEOF
        /// CHANNEL_CLOSE arrived; `undelivered` when some of the peer's bytes have
        /// not reached the local end yet. `now` in ms (monotonic).
        case peerClose(undelivered: Bool, now: Int64)
        /// A channel request arrived (want-reply or not).
        case peerRequest
        /// Everything the peer sent before its EOF reached the local end.
        case inboundDelivered
        /// The local end stopped taking bytes; `failure` when that was an error worth logging.
        case inboundAbandoned(failure: ChannelEndReason?)
        /// The local end's output ended (EOF on every stream); `failure` when by an error.
        case outboundEnded(failure: ChannelEndReason?)
        /// Everything the local end sent reached the channel.
        case outboundDelivered
        /// The local end's process exited.
        case processExited(ExitReport)
        /// Time passed (ms, monotonic): deadlines are checked.
        case tick(now: Int64)
        /// The channel must end now (connection closing, a write to the channel failed, ...).
        case abort(ChannelEndReason)
    }

    /// What the owner must do, in order.
    public enum Action: Sendable, Equatable {
        /// (`peerData`) Pass the bytes to the local end.
        case deliver
        /// (`peerData`) Leave the bytes with libssh, unread: the local end does not
        /// exist yet, or CLOSE was sent (reading would reopen the peer's window).
        case leave
        /// (`peerData`) Take the bytes and drop them: nothing will read them (sshd does the same).
        case discard
        /// (`peerRequest`) Answer the request (if it asked for a reply).
        case reply
        /// Half-close toward the local end: the peer's EOF, delivered.
        case shutdownLocalInput
        /// Send `exit-status` or `exit-signal`.
        case sendExit(ExitReport)
        /// Send CHANNEL_EOF.
        case sendEOF
        /// Send CHANNEL_CLOSE.
        case sendClose
        /// Log the end and free the channel and its local end.
        case release(ChannelEndReason)
    }

    /// How long a peer's last bytes may take to reach a slow local end after its CLOSE, in ms.
    public static let drainMilliseconds: Int64 = 5000

    public private(set) var phase: Phase
    public private(set) var inbound: Flow = .open
    public private(set) var outbound: Flow = .open
    public private(set) var peerSentEOF = false
    public private(set) var peerSentClose = false
    public private(set) var eofSent = false
    public private(set) var closeSent = false
    /// Session channels report the exit; direct-tcpip, forwarded-tcpip and TCPMUX streams do not.
    public let reportsExit: Bool
    /// The exit to report, once known.
    public private(set) var exit: ExitReport?
    public private(set) var exitSent = false
    private var awaitsExit = false
    /// The first failure seen: the channel's end reason if nothing else ends it first.
    private var failure: ChannelEndReason?

    /// A channel starting in `phase` (session channels in `awaitingRequest`;
    /// direct-tcpip opens, whose local end is ready before the open is answered, in `relaying`).
    public init(phase: Phase, reportsExit: Bool, awaitsExit: Bool = false) {
        self.phase = phase
        self.reportsExit = reportsExit
        self.awaitsExit = awaitsExit
    }

    /// True until CLOSE was sent: the owner may write data, extended data, EOF and replies.
    public var maySend: Bool { !closeSent }

    /// True once the channel ended (CLOSE sent, released).
    public var isFinished: Bool {
        if case .finished = phase { return true }
        return false
    }

    /// The draining deadline, if the channel is draining.
    public var drainDeadline: Int64? {
        if case .draining(let deadline) = phase { return deadline }
        return nil
    }

    /// Feeds one event; returns the actions due, in order.
    public mutating func handle(_ event: Event) throws(Violation) -> [Action] {
        switch event {
        case .connecting:
            guard phase == .awaitingRequest else { throw unexpected(event) }
            phase = .connecting
            return []
        case .attached(let awaits):
            guard phase == .awaitingRequest || phase == .connecting else { throw unexpected(event) }
            phase = .relaying
            awaitsExit = awaits
            return settle()
        case .answering(let report):
            guard phase == .awaitingRequest || phase == .connecting else { throw unexpected(event) }
            phase = .answering
            exit = report
            if inbound != .abandoned { inbound = .ended }
            outbound = .ending
            return []
        case .peerData:
            return try peerData()
        case .peerEOF:
            return try peerEOF()
        case .peerClose(let undelivered, let now):
            return try peerClose(undelivered: undelivered, now: now)
        case .peerRequest:
            if peerSentClose { throw .requestAfterClose }
            return closeSent ? [] : [.reply]
        case .inboundDelivered:
            if closeSent { return [] }
            guard inbound == .ending else { throw unexpected(event) }
            inbound = .ended
            return [.shutdownLocalInput] + settle()
        case .inboundAbandoned(let why):
            if closeSent || inbound == .ended || inbound == .abandoned { return [] }
            inbound = .abandoned
            record(why)
            return settle()
        case .outboundEnded(let why):
            if closeSent || outbound == .abandoned { return [] }
            guard outbound == .open else { throw unexpected(event) }
            outbound = .ending
            record(why)
            return []
        case .outboundDelivered:
            if closeSent || outbound == .abandoned { return [] }
            guard outbound == .ending else { throw unexpected(event) }
            outbound = .ended
            var actions: [Action] = []
            if let report = reportableExit { actions.append(.sendExit(report)); exitSent = true }
            actions.append(.sendEOF)
            eofSent = true
            return actions + settle()
        case .processExited(let report):
            if exit == nil { exit = report }
            return closeSent ? [] : settle()
        case .tick(let now):
            if case .draining(let deadline) = phase, now >= deadline {
                return finish(failure ?? (inbound == .ending ? .peerClosedUndelivered : .peerClosed))
            }
            return []
        case .abort(let reason):
            return closeSent ? [] : finish(reason)
        }
    }

    // MARK: Peer events

    private mutating func peerData() throws(Violation) -> [Action] {
        if peerSentClose { throw .dataAfterClose }
        if peerSentEOF { throw .dataAfterEOF }
        if closeSent { return [.leave] }
        switch phase {
        case .awaitingRequest, .connecting:
            return [.leave]
        case .relaying:
            return [inbound == .open ? .deliver : .discard]
        case .answering:
            return [.discard]
        case .draining, .finished:
            return [.leave]
        }
    }

    private mutating func peerEOF() throws(Violation) -> [Action] {
        if peerSentClose { throw .eofAfterClose }
        if peerSentEOF { throw .secondEOF }
        peerSentEOF = true
        if closeSent { return [] }
        switch phase {
        case .answering:
            if inbound == .open { inbound = .ended }
        default:
            if inbound == .open { inbound = .ending }
        }
        return []
    }

    private mutating func peerClose(undelivered: Bool, now: Int64) throws(Violation) -> [Action] {
        if peerSentClose { throw .secondClose }
        peerSentClose = true
        peerSentEOF = true
        if closeSent { return [] }
        // Nothing more goes to a peer that closed (libssh refuses writes on a closed channel).
        if outbound == .open || outbound == .ending { outbound = .abandoned }
        switch phase {
        case .relaying where reportsExit && awaitsExit && exit == nil:
            // A session channel whose program still runs: as sshd does (session.c
            // `session_close_by_channel`), wait for its exit and send exit-status
            // before CLOSE (PuTTY and Dropbear close first and still read it),
            // bounded by the drain deadline. The program sees EOF once the peer's
            // last bytes reached it.
            var actions: [Action] = []
            if inbound == .open || inbound == .ending {
                if undelivered {
                    inbound = .ending
                } else {
                    inbound = .ended
                    actions.append(.shutdownLocalInput)
                }
            }
            phase = .draining(deadline: now + Self.drainMilliseconds)
            return actions
        case .relaying where undelivered && (inbound == .open || inbound == .ending):
            inbound = .ending
            phase = .draining(deadline: now + Self.drainMilliseconds)
            return []
        case .relaying:
            if inbound == .open || inbound == .ending {
                inbound = .ended
                return [.shutdownLocalInput] + finish(failure ?? (eofSent ? .closed : .peerClosed))
            }
            return finish(failure ?? (eofSent ? .closed : .peerClosed))
        default:
            return finish(failure ?? (eofSent ? .closed : .peerClosed))
        }
    }

    // MARK: Completion

    /// The exit to send now, if this channel reports one, has not yet, and it is known.
    private var reportableExit: ExitReport? {
        guard reportsExit, !exitSent else { return nil }
        if let exit { return exit }
        // A stream (socket) local end has no process: 0, or 1 when its output failed.
        if !awaitsExit, phase == .relaying || phase == .answering, outbound != .open {
            return .status(failure == nil ? 0 : 1)
        }
        return nil
    }

    /// Ends the channel when both directions (and the process, if any) are done.
    private mutating func settle() -> [Action] {
        guard !closeSent else { return [] }
        switch phase {
        case .relaying:
            let processDone = !awaitsExit || exit != nil
            // A session channel ends with its program; any other channel, as sshd's
            // direct-tcpip, only once the peer sent EOF too (or its bytes can no
            // longer be delivered): PuTTY drops what it has not yet written out
            // locally when a CLOSE arrives right after the EOF.
            let inboundDone = inbound == .ended || inbound == .abandoned || (reportsExit && awaitsExit && exit != nil)
            guard outbound == .ended, processDone, inboundDone else { return [] }
        case .answering:
            guard outbound == .ended else { return [] }
        case .draining:
            guard inbound != .ending, !awaitsExit || exit != nil || !reportsExit else { return [] }
            var actions: [Action] = []
            if let report = reportableExit {
                actions.append(.sendExit(report))
                exitSent = true
            }
            return actions + finish(failure ?? (eofSent ? .closed : .peerClosed))
        default:
            return []
        }
        var actions: [Action] = []
        if let report = reportableExit {
            actions.append(.sendExit(report))
            exitSent = true
        }
        return actions + finish(failure ?? .closed)
    }

    private mutating func finish(_ reason: ChannelEndReason) -> [Action] {
        guard !closeSent else { return [] }
        closeSent = true
        phase = .finished(reason)
        return [.sendClose, .release(reason)]
    }

    private mutating func record(_ why: ChannelEndReason?) {
        if failure == nil, let why { failure = why }
    }

    private func unexpected(_ event: Event) -> Violation {
        .unexpected(event: "\(event)", phase: "\(phase)")
    }
}

import FivedCore
import FivedSystem
import LibSSH
import Logging
import Synchronization

/// Channel ids, unique in the process (the PROXY v2 UNIQUE_ID and log lines carry them).
private let channelSerial = Atomic<UInt64>(0)

/// One SSH connection on a worker. libssh queues every request of the session
/// (authentication, channel opens, channel and global requests); the worker
/// hands them to `drainMessages` after each pass over the session, and this
/// answers each when it has decided: at once, or once a backend is ready. The
/// protocol jobs are split by file: authentication (+Authentication), channel
/// opens and session requests (+ChannelOpen), publishing (+Publishing). Every
/// call runs on the worker's thread.
final class Connection {
    let id: UInt64
    let session: SSHSession
    /// This session's private poll context (see Worker).
    let event: SSHEvent
    /// The SSH socket, as accepted (libssh may close it before teardown).
    let socketFD: Int32
    var pollerToken: UInt64 = 0
    var registeredEvents: UInt32 = 0
    unowned let worker: Worker
    let client: Endpoint
    let local: Endpoint
    let logger: Logger
    /// The authenticated caller; nil until authentication succeeds.
    var caller: Caller?
    var failedAttempts = 0
    /// An authentication request waits for what decides it (a user's files the
    /// spawner opens, authorized_keys_command): no further message is answered (replies keep their order) and the socket is not
    /// read (a client cannot queue input meanwhile) until it is decided.
    var awaitingAuthorization = false
    /// The unauthenticated-connection slot this connection holds until it authenticates.
    private var startupSlot: StartupSlot?
    /// The key this connection counts against (`max_connections_per_key`), once authenticated.
    private(set) var countedKey: String?
    let acceptedAt = MonotonicClock.now
    let loginDeadline: Int64
    private(set) var channels: [ObjectIdentifier: ServiceChannel] = [:]
    /// direct-tcpip opens waiting for their backend before they are answered.
    var pendingOpens: [ObjectIdentifier: PendingOpen] = [:]
    /// When each backend connect in flight began, by channel id (ns; for `fived_backend_connect_seconds`).
    var backendConnectStarts: [UInt64: UInt64] = [:]
    /// `no-more-sessions@openssh.com` arrived (OpenSSH PROTOCOL §2.2); session
    /// opens are refused from the next drain of libssh's queue on (`sessionsEnded`).
    private var noMoreSessionsRequested = false
    /// Session opens now end the connection, as in sshd (serverloop.c
    /// `server_request_session`: "Possible attack").
    private(set) var sessionsEnded = false
    /// The client is OpenSSH (or a fork keeping its name), whose only channel
    /// request without want-reply and without a terminal is `eow@openssh.com`.
    private(set) lazy var peerIsOpenSSH = session.peerBanner.hasPrefix("SSH-2.0-OpenSSH")
    private(set) var closing = false
    private(set) var closeReason = ConnectionEndReason.clientDisconnected

    // Liveness (client_alive_*): when the client last sent anything, and the
    // keepalives sent since.
    var lastInput = MonotonicClock.now
    /// `session.packetsReceived` when `lastInput` was last brought up to date.
    var packetsSeen: UInt64 = 0
    var lastProbe: Int64 = 0
    var probesUnanswered = 0
    /// Probes another connection asked for (a takeover of a published name):
    /// answered alive on the next input, dead at their deadline.
    var livenessProbes: [(since: Int64, deadline: Int64, report: (Bool) -> Void)] = []
    /// Fleet (Connection+Fleet): the peer node this connection logged in as
    /// (owner side), the link this connection is (entry side), the node hop of
    /// channels by id, and publications waiting for the registry's answer.
    var peerNode: NodeName?
    var peerLink: PeerLink?
    var fleetHops: [UInt64: FleetHop] = [:]
    var pendingRegistrations: [ServiceName: SSHMessage] = [:]
    /// tcpip-forward requests waiting for a takeover probe's answer, by token.
    var pendingTakeovers: [UInt64: (message: SSHMessage, name: ServiceName, address: String, port: UInt32)] = [:]

    // Coalescing client data toward backends (see ServiceChannel.coalesceBytes).
    /// True while the worker lets libssh read this session's socket: more of the
    /// client's data is probably on its way, so small amounts may wait.
    var isReading = false
    /// The last wake-up brought bulk input (Worker.bulkInputBytes): the next
    /// one reads the socket for libssh.
    var inputIsBulk = false
    /// Channels holding back client data, and until when.
    var heldDeliveries = HeldDeliveries<ServiceChannel>()

    init(
        id: UInt64, session: SSHSession, worker: Worker, client: Endpoint, local: Endpoint, startupSlot: StartupSlot?,
        loginGraceSeconds: Int, logger: Logger
    ) throws(LibSSHError) {
        self.id = id
        self.startupSlot = startupSlot
        self.session = session
        self.event = try SSHEvent()
        self.socketFD = session.fileDescriptor
        self.worker = worker
        self.client = client
        self.local = local
        self.logger = logger
        self.loginDeadline = acceptedAt + Int64(loginGraceSeconds) * 1000
    }

    var isAuthenticated: Bool { caller != nil }

    /// True when fived ends the connection (not the client going away).
    var endedByFived: Bool {
        switch closeReason {
        case .clientDisconnected, .disconnectedBeforeAuthentication: return false
        default: return closing
        }
    }

    /// Marks the connection for teardown at the worker's next pass.
    func close(reason: ConnectionEndReason) {
        guard !closing else { return }
        closing = true
        closeReason = reason
        worker.markClosing(self)
    }

    /// Gives back the unauthenticated-connection slot (once).
    func releaseStartupSlot() {
        guard let slot = startupSlot else { return }
        startupSlot = nil
        worker.startups.release(slot)
    }

    /// Counts this connection against its key; false when the key has
    /// `max_connections_per_key` already.
    func takeKeyConnection(_ fingerprint: String) -> Bool {
        guard countedKey == nil else { return true }
        guard worker.keyUsage.takeConnection(fingerprint, limit: worker.config.snapshot.limits.maxConnectionsPerKey) else { return false }
        countedKey = fingerprint
        return true
    }

    func releaseKeyConnection() {
        guard let key = countedKey else { return }
        countedKey = nil
        worker.keyUsage.releaseConnection(key)
    }

    /// Counts one more channel against the caller's key; false (logged) when
    /// it has `max_channels_per_key` open already.
    func takeKeyChannel() -> Bool {
        guard let key = caller?.key.blob.fingerprint else { return false }
        guard worker.keyUsage.takeChannel(key, limit: worker.config.snapshot.limits.maxChannelsPerKey) else {
            DaemonMetrics.shared.refused(.maxChannelsPerKey)
            logger.info(
                "channel refused",
                metadata: [
                    "user": "\(caller?.user ?? "-")", "fingerprint": "\(key)", "client": "\(client)",
                    "reason": "max_channels_per_key reached",
                ])
            return false
        }
        return true
    }

    func releaseKeyChannel() {
        if let key = caller?.key.blob.fingerprint { worker.keyUsage.releaseChannel(key) }
    }

    // MARK: Requests

    /// Answers what libssh queued. Called after every pass over the session (and
    /// after channels ran, since libssh reads packets inside channel calls too).
    func drainMessages() {
        while !closing, !awaitingAuthorization, let message = session.nextMessage() {
            handle(message)
        }
        // libssh handled the request inside its packet pass, possibly after a
        // session open that was queued in the same pass (OpenSSH sends both
        // together): opens already queued are served, later ones are not.
        if noMoreSessionsRequested { sessionsEnded = true }
    }

    /// The client sent `no-more-sessions@openssh.com` (seen in libssh's log).
    func peerWantsNoMoreSessions() {
        noMoreSessionsRequested = true
    }

    private func handle(_ message: SSHMessage) {
        if peerLink != nil || peerNode != nil, handleFleetMessage(message) { return }
        switch message.kind {
        case .service(let name):
            // RFC 4252 §3: "ssh-userauth" is the only service a client asks for.
            if name == "ssh-userauth" {
                message.acceptService()
            } else {
                protocolViolation("service request for \(ServiceName.printable(name))")
            }
        case .authentication(let request):
            authenticate(message, request)
        case .channelOpen(let open):
            // Never route a channel before authentication completes.
            guard caller != nil else {
                message.refuse()
                return
            }
            openChannel(message, open)
        case .channelRequest(let request):
            // A request for a channel already released gets no reply (its CLOSE was sent).
            guard caller != nil, let channel = message.channel?.delegate as? ServiceChannel else { return }
            route(message, request, on: channel)
        case .globalRequest(let request):
            guard caller != nil else {
                message.refuse()
                return
            }
            globalRequest(message, request)
        case .other:
            message.refuse()
        }
    }

    /// The peer broke the SSH protocol: log it and drop the whole connection
    /// (every other connection is untouched).
    func protocolViolation(_ what: String) {
        logger.info(
            "protocol violation",
            metadata: [
                "user": "\(caller?.user ?? "-")", "client": "\(client)", "reason": "\(what)",
            ])
        close(reason: .protocolViolation(what))
    }

    /// A channel's peer broke the channel protocol.
    func protocolViolation(_ violation: ChannelStateMachine.Violation, on channel: ServiceChannel) {
        protocolViolation("\(violation) on channel \(channel.id) (\(channel.service))")
    }

    // MARK: Channel lifetime

    func makeChannelID() -> UInt64 {
        channelSerial.add(1, ordering: .relaxed).newValue
    }

    func admitsAnotherChannel() -> Bool {
        channels.count + pendingOpens.count < worker.config.snapshot.limits.maxChannelsPerConnection
    }

    /// Adds a channel this connection carries.
    func adopt(_ channel: ServiceChannel) {
        channels[ObjectIdentifier(channel)] = channel
    }

    func forget(_ channel: ServiceChannel) {
        guard channels.removeValue(forKey: ObjectIdentifier(channel)) != nil else { return }
        fleetHops.removeValue(forKey: channel.id)
        if channel.countsAgainstKey { releaseKeyChannel() }
    }

    /// Called by a channel once it has sent CLOSE; logs its end and tears it down.
    func channelFinished(_ channel: ServiceChannel, reason: ChannelEndReason) {
        var meta = channelMetadata(channel)
        meta["bytes_in"] = "\(channel.bytesIn)"
        meta["bytes_out"] = "\(channel.bytesOut)"
        meta["duration_ms"] = "\(MonotonicClock.now - channel.startedAt)"
        meta["reason"] = "\(reason)"
        logger.info("channel closed", metadata: meta)
        meterClosed(channel, reason: reason)
        peerLinkChannelFinished(channel)
        worker.channelFinished(channel)
    }

    /// What every log line about a channel carries; with a certificate, its key
    /// ID and serial too, so the line names the person, not only the key.
    func channelMetadata(_ channel: ServiceChannel) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "user": "\(caller?.user ?? "-")",
            "fingerprint": "\(caller?.key.blob.fingerprint ?? "-")",
            "client": "\(client)",
            "service": "\(channel.service)",
            "form": "\(channel.formLabel)",
            "channel": "\(channel.id)",
        ]
        if let certificate = caller?.certificate {
            metadata["key_id"] = "\(certificate.keyID)"
            metadata["serial"] = "\(certificate.serial)"
        }
        fleetHops[channel.id]?.annotate(&metadata)
        return metadata
    }

    /// What the service learns about this connection's caller.
    func handOff(service: ServiceName, caller: Caller?, channelID: UInt64?) -> CallerHandOff {
        CallerHandOff(
            service: service, caller: caller, clientAddress: client.address, clientPort: client.port,
            localAddress: local.address, localPort: local.port, channelID: channelID)
    }
}

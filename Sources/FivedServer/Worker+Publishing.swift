import FivedCore
import FivedSystem
import LibSSH

/// An open asked of another worker for a caller (toward a publisher here, or relayed
/// to the node that owns the name), whose worker waits for the answer under `token`.
protocol CallerOpenRequest {
    /// The caller's worker.
    var replyTo: Worker { get }
    var token: UInt64 { get }
}

extension CallerOpenRequest {
    /// Tells the caller's worker how the open went (nil: confirmed).
    func answer(failure: String?) {
        let token = token
        replyTo.perform { $0.publisherAnswered(token: token, failure: failure) }
    }
}

/// A caller's channel to a published name, as the caller's worker asks the
/// publisher's worker to open it.
struct ForwardRequest: CallerOpenRequest, Sendable {
    /// The publisher's connection (ids are unique in the process).
    let connectionID: UInt64
    let name: ServiceName
    /// The listen address and port the publisher asked for (its client matches opens against them).
    let address: String
    let port: UInt32
    /// The caller, for the forwarded-tcpip originator fields.
    let originator: Endpoint
    /// The caller's worker, which waits for the answer under `token`.
    let replyTo: Worker
    let token: UInt64
    /// How long the publisher's client may take to answer, in ms.
    let timeoutMilliseconds: Int64
}

/// A forwarded-tcpip open toward a publisher, waiting for its client to answer.
struct PendingForward {
    let request: ForwardRequest
    let connection: Connection
    let channel: SSHChannel
    let backend: BackendConnection
    let deadline: Int64
}

extension PendingForward {
    /// Sends or continues the forwarded-tcpip open.
    func advance() -> SSHChannel.OpenProgress {
        channel.openReverseForward(
            address: request.address, port: request.port,
            originator: request.originator.address, originatorPort: UInt32(request.originator.port))
    }
}

extension Worker {
    /// Opens a forwarded-tcpip channel on the publisher's connection (this
    /// worker's) for a caller on any worker, joined to `fd`, one end of a socketpair.
    func startForwarded(_ request: ForwardRequest, fd: Int32) {
        let backend = BackendConnection(stream: Descriptor(fd))
        guard let connection = connectionsByID[request.connectionID], !connection.closing,
            let channel = SSHChannel.make(on: connection.session)
        else {
            retire(backend)
            request.answer(failure: "the publisher's connection is gone")
            return
        }
        let pending = PendingForward(
            request: request, connection: connection, channel: channel, backend: backend,
            deadline: MonotonicClock.now + request.timeoutMilliseconds)
        let progress = pending.advance()
        touched[ObjectIdentifier(connection)] = connection
        pendingForwards.append(pending)
        if progress != .pending { advancePendingForwards() }
    }

    /// Retries forwarded-tcpip opens until the publisher's client answers.
    func advancePendingForwards() {
        guard !pendingForwards.isEmpty else { return }
        var still: [PendingForward] = []
        let now = MonotonicClock.now
        for entry in pendingForwards {
            var progress = entry.advance()
            if progress == .pending && now >= entry.deadline { progress = .failed }
            var why = "the publisher refused the channel or did not answer within \(entry.request.timeoutMilliseconds / 1000) s"
            if progress == .open, (entry.channel.remoteMaxPacket ?? 0) < Connection.minimumMaxPacket {
                // As for channels opened to fived: a tiny maximum packet would pin this worker.
                why =
                    "the publisher's maximum packet size \(entry.channel.remoteMaxPacket.map(String.init) ?? "(unreadable)") is below \(Connection.minimumMaxPacket)"
                entry.channel.close()
                progress = .failed
            }
            switch progress {
            case .pending:
                still.append(entry)
            case .failed:
                entry.connection.logger.info(
                    "channel refused",
                    metadata: [
                        "user": "\(entry.connection.caller?.user ?? "-")", "client": "\(entry.connection.client)",
                        "service": "\(entry.request.name)", "form": "forwarded-tcpip",
                        "reason": "\(why)",
                    ])
                entry.channel.release()
                retire(entry.backend)
                entry.request.answer(failure: why)
            case .open:
                let channel = ServiceChannel(
                    id: entry.connection.makeChannelID(), channel: entry.channel, connection: entry.connection,
                    isSessionChannel: false, phase: .awaitingRequest)
                entry.connection.adopt(channel)
                channel.name(form: .directTCPIP, service: entry.request.name.value, label: "forwarded-tcpip")
                channel.attach(entry.backend)
                touched[ObjectIdentifier(entry.connection)] = entry.connection
                entry.request.answer(failure: nil)
            }
        }
        pendingForwards = still
    }

    /// Probes the connection holding `name` for a takeover (on this, its
    /// worker): a keepalive now; if nothing arrives within 5 s the holder is
    /// presumed dead, lets the name go and is closed; either way the requester's
    /// worker hears back under `token`.
    func probePublisher(_ connectionID: UInt64, name: ServiceName, replyTo: Worker, token: UInt64, for requester: UInt64) {
        let answer = { @Sendable (alive: Bool) in
            replyTo.perform { $0.connectionsByID[requester]?.takeoverAnswered(token: token, holderAlive: alive) }
        }
        guard let holder = connectionsByID[connectionID], !holder.closing else {
            answer(false)  // gone already: its names were released with it
            return
        }
        let now = MonotonicClock.now
        probe(holder, now: now)
        holder.livenessProbes.append(
            (
                since: now, deadline: now + Self.takeoverProbeMilliseconds,
                report: { [unowned self] alive in
                    if !alive {
                        publications.release(name, connectionID: holder.id)
                        logger.info(
                            "unpublished",
                            metadata: [
                                "user": "\(holder.caller?.user ?? "-")", "client": "\(holder.client)", "service": "\(name)",
                                "reason": "a new connection with the same key took it over; this one did not answer a keepalive",
                            ])
                        holder.close(reason: .publicationTakenOver(name: name.value))
                    }
                    answer(alive)
                }
            ))
    }

    /// How long the holder of a published name has to answer a takeover probe.
    static let takeoverProbeMilliseconds: Int64 = 5000

    /// Drops the forwarded opens of a connection that is going away.
    func dropPendingForwards(of connection: Connection) {
        pendingForwards.removeAll { entry in
            guard entry.connection === connection else { return false }
            entry.channel.release()
            retire(entry.backend)
            entry.request.answer(failure: "the publisher disconnected")
            return true
        }
    }
}

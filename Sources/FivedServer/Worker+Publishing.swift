import FivedCore
import FivedSystem
import LibSSH

/// A caller's channel to a published name, as the caller's worker asks the
/// publisher's worker to open it.
struct ForwardRequest: Sendable {
    /// The publisher's connection (ids are unique in the process).
    let connectionID: UInt64
    let name: ServiceName
    /// The listen address and port the publisher asked for (its client matches opens against them).
    let address: String
    let port: UInt32
    /// The caller, for the forwarded-tcpip originator fields.
    let originator: Endpoint
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
    /// How long a publisher's client may take to answer a forwarded-tcpip open.
    static let forwardOpenTimeoutMilliseconds: Int64 = 10_000

    /// Opens a forwarded-tcpip channel on the publisher's connection (this
    /// worker's) for a caller on any worker, joined to `fd`, one end of a socketpair.
    func startForwarded(_ request: ForwardRequest, fd: Int32) {
        let backend = BackendConnection(stream: Descriptor(fd))
        guard let connection = connectionsByID[request.connectionID], !connection.closing,
              let channel = SSHChannel.make(on: connection.session)
        else {
            retire(backend)
            return
        }
        let pending = PendingForward(
            request: request, connection: connection, channel: channel, backend: backend,
            deadline: MonotonicClock.now + Self.forwardOpenTimeoutMilliseconds)
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
            switch progress {
            case .pending:
                still.append(entry)
            case .failed:
                entry.connection.logger.info("channel refused", metadata: [
                    "user": "\(entry.connection.caller?.user ?? "-")", "client": "\(entry.connection.client)",
                    "service": "\(entry.request.name)", "form": "forwarded-tcpip",
                    "reason": "the publisher refused the channel or did not answer within 10 s",
                ])
                entry.channel.release()
                retire(entry.backend)
            case .open:
                let channel = ServiceChannel(
                    id: entry.connection.makeChannelID(), channel: entry.channel, connection: entry.connection,
                    isSessionChannel: false, phase: .awaitingRequest)
                entry.connection.adopt(channel)
                channel.name(form: .directTCPIP, service: entry.request.name.value, label: "forwarded-tcpip")
                channel.attach(entry.backend)
                touched[ObjectIdentifier(entry.connection)] = entry.connection
            }
        }
        pendingForwards = still
    }

    /// Drops the forwarded opens of a connection that is going away.
    func dropPendingForwards(of connection: Connection) {
        pendingForwards.removeAll { entry in
            guard entry.connection === connection else { return false }
            entry.channel.release()
            retire(entry.backend)
            return true
        }
    }
}

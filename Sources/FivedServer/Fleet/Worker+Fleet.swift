import FivedCore
import FivedFleet
import FivedSystem
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// The entry side of a relayed channel, on the worker that carries the
/// connection to the owner node: dialing the peer, opening a direct-tcpip
/// channel per caller on the shared connection, and joining it to the caller's
/// socketpair end, exactly as Worker+Publishing joins a publisher's channel.
extension Worker {
    /// Relays a caller (whose worker holds the other end of `stream`) to `request.owner`.
    func startRelay(_ request: RelayRequest, stream: Descriptor) {
        guard fleet != nil, !stopping else {
            stream.close()
            request.answer(failure: "this node is stopping")
            return
        }
        let now = MonotonicClock.now
        let link = peerLinks[request.owner] ?? PeerLink(node: request.owner, record: request.record, worker: self)
        peerLinks[request.owner] = link
        if link.record != request.record {
            // The node came back (a new lease, perhaps a new address): try it at once.
            link.record = request.record
            if link.phase == .down { link.retryAt = 0 }
        }
        if link.phase == .down && now < link.retryAt {
            stream.close()
            request.answer(failure: "node \(link.node) unreachable: \(link.lastError) (next attempt in \(link.retryAt - now) ms)")
            return
        }
        link.waiting.append((request, stream))
        advance(link, now: now)
    }

    /// Moves every link that has something to do (after each loop pass).
    func advancePeerLinks() {
        guard !peerLinks.isEmpty else { return }
        let now = MonotonicClock.now
        for link in peerLinks.values where link.hasWork || link.phase == .up {
            advance(link, now: now)
        }
    }

    /// A poller event on a link's socket during its key exchange or authentication.
    func peerLinkEvent(_ link: PeerLink) {
        advance(link, now: MonotonicClock.now)
    }

    private func advance(_ link: PeerLink, now: Int64) {
        switch link.phase {
        case .idle, .down:
            if !link.waiting.isEmpty && now >= link.retryAt { dial(link, now: now) }
        case .connecting:
            break  // the connect's writability drives it
        case .handshaking:
            handshake(link, now: now)
        case .authenticating:
            authenticate(link, now: now)
        case .up:
            guard let connection = link.connection, !connection.closing, connectionsByID[connection.id] != nil else {
                linkLost(link, reason: link.connection?.closing == true ? "connection closed" : "connection gone", wasUp: true)
                return
            }
            openWaiting(link, on: connection, now: now)
        }
    }

    // MARK: Dialing

    private func dial(_ link: PeerLink, now: Int64) {
        guard let (host, port) = Self.split(link.record.advertise) else {
            linkFailed(link, "node \(link.node) advertises '\(ServiceName.printable(link.record.advertise))', not HOST:PORT")
            return
        }
        link.dialedAddress = link.record.advertise
        link.dialDeadline = now + Int64(config.snapshot.limits.connectTimeoutSeconds) * 1000
        fleet?.updatePeer(link.node) {
            $0.state = "connecting"
            $0.address = link.dialedAddress
        }
        do {
            switch try BackendConnector.start(.tcp(host: host, port: port), timeoutMilliseconds: link.dialDeadline - now) {
            case .ready(let backend):
                peerConnected(link, .success(backend))
            case .pending(let pending):
                link.phase = .connecting
                link.startConnect(pending)
                watchPending(link)
            }
        } catch {
            linkFailed(link, "connect to \(link.dialedAddress): \(error)")
        }
    }

    /// `HOST:PORT` (IPv6 in brackets) split; nil when it is not that.
    static func split(_ address: String) -> (String, UInt16)? {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// The TCP connect to a peer finished: hand the socket to libssh and start the key exchange.
    func peerConnected(_ link: PeerLink, _ result: Result<BackendConnection, BackendFailure>) {
        guard case .success(let backend) = result, let stream = backend.stream else {
            if case .failure(let failure) = result { linkFailed(link, "connect to \(link.dialedAddress): \(failure)") }
            return
        }
        let fd = stream.release()
        do {
            // libssh treats EAGAIN on its socket as fatal: blocking, bounded by a send timeout (as accepted sockets).
            try Syscall.setNonBlocking(fd, false)
            Socket.setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1)
            Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, 60)
            Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, 15)
            Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, 4)
            Socket.setSendTimeout(fd, seconds: 10)
            guard let fleet, let (host, port) = Self.split(link.record.advertise) else { throw LibSSHError(.option, "no fleet") }
            let client = try SSHClient()
            try client.setHost(host)
            try client.setPort(port)
            try client.setUser(fleet.me.value)
            // Nothing of a user's ~/.ssh applies to a node's connection.
            try client.setSSHDirectory("/nonexistent/fived-node")
            try client.useConnectedSocket(fd)
            client.setBlocking(false)
            link.client = client
        } catch {
            Syscall.close(fd)
            linkFailed(link, "\(error)")
            return
        }
        link.phase = .handshaking
        poller.update(&link.registeredDial, fd: fd, events: PollEvents.readable, target: .peerLink(link))
        handshake(link, now: MonotonicClock.now)
    }

    private func handshake(_ link: PeerLink, now: Int64) {
        guard let client = link.client else { return }
        do {
            guard try client.connectStep() else {
                return dialWaits(link, now: now, step: "key exchange")
            }
        } catch {
            return linkFailed(link, "key exchange with \(link.dialedAddress): \(error.message)")
        }
        guard let key = client.serverKey(), link.record.hostKeys.contains(key.fingerprint) else {
            return linkFailed(link, "host key \(client.serverKey()?.fingerprint ?? "(none)") of \(link.dialedAddress) is not one node \(link.node) registered")
        }
        do {
            guard let key = fleet?.nodeKey else { return linkFailed(link, "this node has no node key") }
            link.nodeKey = try key.copy()
        } catch {
            return linkFailed(link, "cannot copy the node key: \(error.message)")
        }
        link.phase = .authenticating
        authenticate(link, now: now)
    }

    private func authenticate(_ link: PeerLink, now: Int64) {
        guard let client = link.client, let key = link.nodeKey else { return }
        switch client.authenticateStep(with: key) {
        case nil:
            dialWaits(link, now: now, step: "authentication")
        case .success?:
            linkUp(link, client)
        case .denied?, .partial?:
            linkFailed(link, "node \(link.node) refused this node's key (is it in its peers_authorized_keys?)")
        case .error(let text)?:
            linkFailed(link, "authentication with node \(link.node): \(text)")
        }
    }

    /// A dial step waits for the peer: watch for output to flush, and give up at the deadline.
    private func dialWaits(_ link: PeerLink, now: Int64, step: String) {
        guard let client = link.client else { return }
        if now >= link.dialDeadline {
            return linkFailed(link, "\(step) with \(link.dialedAddress) timed out")
        }
        if !client.isConnected {
            return linkFailed(link, "\(step) with \(link.dialedAddress): connection closed (\(client.session.lastErrorText))")
        }
        let wanted = PollEvents.readable | (client.session.flushOutput() ? 0 : PollEvents.writable)
        poller.update(&link.registeredDial, fd: client.fileDescriptor, events: wanted, target: .peerLink(link))
    }

    private func linkUp(_ link: PeerLink, _ client: SSHClient) {
        poller.remove(&link.registeredDial)
        let fd = client.fileDescriptor
        let peer = Endpoint.peer(of: fd) ?? Endpoint(address: "?", port: 0)
        let local = Endpoint.local(of: fd) ?? Endpoint(address: "?", port: 0)
        let connection: Connection
        do {
            connection = try adoptOutbound(client.session, peer: peer, local: local)
        } catch {
            return linkFailed(link, "cannot add the connection to node \(link.node): \(error.message)")
        }
        // The owner is the "caller" of this connection as far as the worker's
        // bookkeeping goes (liveness, status); it may open nothing here (Connection+Fleet).
        if let blob = client.serverKeyBlob().flatMap(PublicKeyBlob.init(bytes:)) {
            connection.caller = Caller(
                user: "node:\(link.node)", key: AuthorizedKey(blob: blob, comment: "node \(link.node)", options: KeyOptions(), file: "-", line: 0),
                address: peer.address, port: peer.port)
        }
        connection.peerLink = link
        link.connection = connection
        link.client = nil
        link.nodeKey = nil
        link.phase = .up
        link.failures = 0
        link.lastError = ""
        fleet?.updatePeer(link.node) {
            $0.state = "up"
            $0.lastError = ""
        }
        logger.info(
            "peer connected",
            metadata: [
                "node": "\(link.node)", "address": "\(link.dialedAddress)", "fingerprint": "\(connection.caller?.key.blob.fingerprint ?? "-")",
            ])
        openWaiting(link, on: connection, now: MonotonicClock.now)
    }

    /// A dial failed: every waiting caller is refused now (never left hanging),
    /// and the next attempt waits its backoff.
    private func linkFailed(_ link: PeerLink, _ reason: String) {
        link.failures += 1
        endDial(link)
        markDown(link, reason: reason, retryIn: ReconnectBackoff.delay(afterFailures: link.failures))
    }

    /// An established connection ended: callers still opening are refused; the
    /// next caller redials at once (it was healthy until now).
    private func linkLost(_ link: PeerLink, reason: String, wasUp: Bool) {
        link.failures = 0
        link.connection = nil
        markDown(link, reason: reason, retryIn: 0)
    }

    private func endDial(_ link: PeerLink) {
        cancelConnect(link)
        poller.remove(&link.registeredDial)
        link.client?.disconnect()
        link.client = nil
        link.nodeKey = nil
    }

    private func markDown(_ link: PeerLink, reason: String, retryIn: Int64) {
        link.phase = .down
        link.lastError = reason
        link.retryAt = MonotonicClock.now + retryIn
        let refusal = "node \(link.node) unreachable: \(reason)"
        for entry in link.opening {
            entry.channel.release()
            entry.stream.close()
            entry.request.answer(failure: refusal)
        }
        for entry in link.waiting {
            entry.stream.close()
            entry.request.answer(failure: refusal)
        }
        let refused = link.opening.count + link.waiting.count
        link.opening = []
        link.waiting = []
        fleet?.updatePeer(link.node) {
            $0.state = "down"
            $0.lastError = reason
            $0.channelsOpen = 0
        }
        logger.warning(
            "peer unreachable",
            metadata: [
                "node": "\(link.node)", "address": "\(link.dialedAddress)", "reason": "\(reason)", "refused": "\(refused)",
                "retry_ms": "\(retryIn)",
            ])
    }

    // MARK: Relayed channels

    /// Sends the channel opens of the callers waiting, and joins the ones the owner confirmed.
    private func openWaiting(_ link: PeerLink, on connection: Connection, now: Int64) {
        for entry in link.waiting {
            guard let channel = SSHChannel.make(on: connection.session) else {
                entry.stream.close()
                entry.request.answer(failure: "cannot allocate a channel toward node \(link.node)")
                continue
            }
            link.opening.append((entry.request, entry.stream, channel))
        }
        link.waiting = []
        guard !link.opening.isEmpty else { return }
        var still: [(request: RelayRequest, stream: Descriptor, channel: SSHChannel)] = []
        for entry in link.opening {
            var why: String?
            do {
                switch try entry.channel.openForward(
                    host: entry.request.name.value, port: 1, originatorHost: entry.request.originator,
                    originatorPort: Int32(entry.request.originatorPort))
                {
                case .pending:
                    if now < entry.request.deadline {
                        still.append(entry)
                        continue
                    }
                    why = "node \(link.node) did not answer the channel open in time"
                case .failed:
                    why = "node \(link.node) refused the channel (its log says why)"
                case .open:
                    why = nil
                }
            } catch {
                why = "node \(link.node) refused the channel (its log says why)"
            }
            touched[ObjectIdentifier(connection)] = connection
            if let why {
                entry.channel.release()
                entry.stream.close()
                entry.request.answer(failure: why)
                continue
            }
            let relay = ServiceChannel(
                id: connection.makeChannelID(), channel: entry.channel, connection: connection, isSessionChannel: false,
                phase: .awaitingRequest)
            connection.adopt(relay)
            connection.fleetHops[relay.id] = FleetHop(hop: entry.request.hop, caller: nil)
            relay.name(form: .directTCPIP, service: entry.request.name.value, label: "relay")
            relay.attach(BackendConnection(stream: entry.stream))
            fleet?.updatePeer(link.node) {
                $0.channelsOpen += 1
                $0.channelsTotal += 1
            }
            entry.request.answer(failure: nil)
        }
        link.opening = still
    }

    /// Timers: dial deadlines, callers waiting too long, hops of opens that failed.
    func tickPeerLinks(now: Int64) {
        guard fleet != nil else { return }
        for connection in connections.values { connection.pruneFleetHops() }
        for link in peerLinks.values {
            if (link.phase == .handshaking || link.phase == .authenticating), now >= link.dialDeadline {
                linkFailed(link, "dialing \(link.dialedAddress) timed out")
                continue
            }
            link.waiting.removeAll { entry in
                guard now >= entry.request.deadline else { return false }
                entry.stream.close()
                entry.request.answer(failure: "node \(link.node): no connection within the connect timeout")
                return true
            }
        }
    }
}

import FivedCore
import FivedSystem
import LibSSH
import Logging

extension Connection {
    /// Global requests from an authenticated client: `tcpip-forward` publishes a
    /// name, `cancel-tcpip-forward` withdraws it; everything else is refused
    /// (libssh answers keepalive@openssh.com itself).
    func globalRequest(_ message: SSHMessage, _ request: SSHMessage.GlobalRequest) {
        switch request {
        case .tcpipForward(let address, let port):
            guard !closing else {
                message.refuse()
                return
            }
            publish(message, address: address, port: port)
        case .cancelTCPIPForward(let address, _):
            guard let name = ServiceName(address), worker.publications.release(name, connectionID: id) else {
                message.refuse()
                return
            }
            logger.info("unpublished", metadata: ["user": "\(caller?.user ?? "-")", "client": "\(client)", "service": "\(name)"])
            message.acceptGlobalRequest(boundPort: 0)
        case .keepalive:
            message.acceptGlobalRequest(boundPort: 0)
        case .unknown:
            message.refuse()
        }
    }

    /// `tcpip-forward` whose bind address is a service name: publish it while
    /// this connection lives, if the key's permitlisten allows and the name is free.
    private func publish(_ message: SSHMessage, address: String, port: UInt32) {
        guard let caller else { return }
        let meta: Logger.Metadata = [
            "user": "\(caller.user)", "fingerprint": "\(caller.key.blob.fingerprint)", "client": "\(client)",
            "service": "\(ServiceName.printable(address))",
        ]
        switch AccessPolicy.mayPublish(caller: caller, name: address) {
        case .refused(let refusal):
            logger.info("publish refused", metadata: meta.merging(["reason": "\(refusal)"]) { $1 })
            message.refuse()
        case .publish(let name):
            if worker.config.snapshot.services[name] != nil {
                logger.info("publish refused", metadata: meta.merging(["reason": "a configured service has that name"]) { $1 })
                message.refuse()
                return
            }
            if let owner = fleetOwner(of: name) {
                logger.info("publish refused", metadata: meta.merging(["reason": "already published (by node \(owner))"]) { $1 })
                message.refuse()
                return
            }
            let publication = Publications.Publication(
                worker: worker, connectionID: id, address: address, port: port, fingerprint: caller.key.blob.fingerprint)
            if worker.publications.claim(name, publication) {
                if registerInFleet(message, name, meta: meta, boundPort: publication.boundPort) { return }
                logger.info("published", metadata: meta)
                message.acceptGlobalRequest(boundPort: UInt16(truncatingIfNeeded: publication.boundPort))
                return
            }
            // Held already. By the same key on another connection (a publisher
            // reconnecting while its old connection hangs)? Probe the holder: if it
            // does not answer within 5 s, this connection takes the name over.
            guard let holder = worker.publications.lookup(name), holder.fingerprint == caller.key.blob.fingerprint,
                holder.connectionID != id
            else {
                logger.info("publish refused", metadata: meta.merging(["reason": "already published"]) { $1 })
                message.refuse()
                return
            }
            let token = worker.nextPublisherToken()
            pendingTakeovers[token] = (message, name, address, port)
            logger.info("publish waits", metadata: meta.merging(["reason": "the same key holds the name on another connection: probing it"]) { $1 })
            let requester = worker
            let connectionID = id
            holder.worker.perform { $0.probePublisher(holder.connectionID, name: name, replyTo: requester, token: token, for: connectionID) }
        }
    }

    /// The holder of a name this connection asked for answered a probe (`alive`)
    /// or not (then it is gone and has let the name go): publish, or refuse.
    func takeoverAnswered(token: UInt64, holderAlive: Bool) {
        guard let pending = pendingTakeovers.removeValue(forKey: token), let caller, !closing else { return }
        let meta: Logger.Metadata = [
            "user": "\(caller.user)", "fingerprint": "\(caller.key.blob.fingerprint)", "client": "\(client)",
            "service": "\(pending.name)",
        ]
        let publication = Publications.Publication(
            worker: worker, connectionID: id, address: pending.address, port: pending.port, fingerprint: caller.key.blob.fingerprint)
        guard !holderAlive, worker.publications.claim(pending.name, publication) else {
            logger.info("publish refused", metadata: meta.merging(["reason": "already published (its holder answers)"]) { $1 })
            pending.message.refuse()
            return
        }
        logger.info("published", metadata: meta.merging(["took_over": "true"]) { $1 })
        pending.message.acceptGlobalRequest(boundPort: UInt16(truncatingIfNeeded: publication.boundPort))
    }

    /// A socketpair joining a caller's channel to one on another worker: the
    /// near end waits as the caller's pending backend (answered by its token,
    /// within connect_timeout_seconds, in ms, and 2 s more), the far end goes to
    /// the other worker.
    func joinedPair() throws(BackendFailure) -> (open: PublisherOpen, far: Descriptor, timeout: Int64) {
        let pair: (Descriptor, Descriptor)
        do {
            pair = try Syscall.socketPair(nonBlocking: true)
        } catch {
            throw BackendFailure(.published, "\(error)")
        }
        let timeout = Int64(worker.config.snapshot.limits.connectTimeoutSeconds) * 1000
        let open = PublisherOpen(token: worker.nextPublisherToken(), stream: pair.0, deadline: MonotonicClock.now + timeout + 2000)
        return (open, pair.1, timeout)
    }

    /// A published name lives on its publisher's connection, perhaps on another
    /// worker thread: the two channels are joined through a socketpair, each end
    /// relayed by its own worker like any socket backend.
    func publishedBackend(_ name: ServiceName, handOff: CallerHandOff) throws(BackendFailure) -> (BackendConnector.Start, [UInt8]) {
        guard let publication = worker.publications.lookup(name) else {
            throw BackendFailure(.published, "no service named \(name)")
        }
        // The caller's open is answered only once the publisher's client has
        // confirmed the forwarded-tcpip channel (or refused it, or not answered
        // within connect_timeout_seconds): never an empty channel that closes.
        let (open, far, timeout) = try joinedPair()
        publication.worker.openForwarded(
            ForwardRequest(
                connectionID: publication.connectionID, name: name, address: publication.address, port: publication.boundPort,
                originator: Endpoint(address: handOff.clientAddress, port: handOff.clientPort), replyTo: worker, token: open.token, timeoutMilliseconds: timeout
            ),
            fd: far.release())
        // A publisher asks for the caller's identity as a PROXY v2 header by
        // publishing on port 2 (`ssh -R NAME:2:...`); port 1 gives the raw stream.
        let header = publication.port == Publications.proxyProtocolPort ? proxyHeader(handOff) : []
        return (.pending(.publisher(open)), header)
    }
}

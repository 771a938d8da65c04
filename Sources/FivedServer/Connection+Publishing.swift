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
            let publication = Publications.Publication(worker: worker, connectionID: id, address: address, port: port)
            guard worker.publications.claim(name, publication) else {
                logger.info("publish refused", metadata: meta.merging(["reason": "already published"]) { $1 })
                message.refuse()
                return
            }
            logger.info("published", metadata: meta)
            message.acceptGlobalRequest(boundPort: UInt16(truncatingIfNeeded: port == 0 ? 1 : port))
        }
    }

    /// A published name lives on its publisher's connection, perhaps on another
    /// worker thread: the two channels are joined through a socketpair, each end
    /// relayed by its own worker like any socket backend.
    func publishedBackend(_ name: ServiceName, handOff: CallerHandOff) throws(BackendFailure) -> (BackendConnector.Start, [UInt8]) {
        guard let publication = worker.publications.lookup(name) else {
            throw BackendFailure(.published, "no service named \(name)")
        }
        let pair: (Descriptor, Descriptor)
        do {
            pair = try Syscall.socketPair(nonBlocking: true)
        } catch {
            throw BackendFailure(.published, "\(error)")
        }
        publication.worker.openForwarded(
            ForwardRequest(
                connectionID: publication.connectionID, name: name, address: publication.address, port: publication.port,
                originator: client),
            fd: pair.1.release())
        // A publisher asks for the caller's identity as a PROXY v2 header by
        // publishing on port 2 (`ssh -R NAME:2:...`); port 1 gives the raw stream.
        let header = publication.port == Publications.proxyProtocolPort ? proxyHeader(handOff) : []
        return (.ready(BackendConnection(stream: pair.0)), header)
    }
}

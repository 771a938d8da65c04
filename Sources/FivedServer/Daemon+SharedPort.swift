import FivedCore
import FivedSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One port for SSH and TCPMUX (`tcpmux_on_ssh_port = true`), on the acceptor's
/// thread: a connection admitted on an SSH listener (it holds a startup slot)
/// waits in `sniffer` until its first bytes or its silence say what it speaks,
/// then goes where a connection on an SSH listener or on a plain TCPMUX listener
/// would have gone, through the same code.
extension Daemon {
    /// Starts an admitted SSH-listener connection: at once when the listeners
    /// speak SSH only, else once its protocol is known. Returns false when the
    /// caller should start it as SSH now.
    func sniff(_ socket: Descriptor, client: Endpoint, local: Endpoint, slot: StartupSlot) -> Bool {
        guard config.snapshot.tcpmuxOnSSHPort else { return false }
        if let (arrival, outcome) = sniffer.watch(socket, client: client, local: local, slot: slot, now: MonotonicClock.now) {
            route(arrival, outcome)
        }
        return true
    }

    /// Sends on the connections whose protocol became known (the acceptor calls
    /// it after every wake-up; it costs nothing while none waits).
    func decideSharedPort() {
        guard sniffer.count > 0 else { return }
        for (arrival, outcome) in sniffer.decide(now: MonotonicClock.now) {
            route(arrival, outcome)
        }
    }

    /// Closes the connections still waiting (fived is stopping).
    func closeSharedPortArrivals() {
        for arrival in sniffer.removeAll() {
            startups.release(arrival.slot)
            arrival.socket.close()
        }
    }

    private func route(_ arrival: SharedPortSniffer.Arrival, _ outcome: SharedPortSniffer.Outcome) {
        switch outcome {
        case .ssh(let silent):
            if silent {
                logger.debug("connection sent nothing: answering SSH", metadata: ["client": "\(arrival.client)"])
            }
            start(arrival.socket, client: arrival.client, local: arrival.local, slot: arrival.slot, sniffed: true)
        case .tcpmux:
            // TCPMUX connections never authenticate: the slot they count against
            // is the TCPMUX one, held for their whole life (as on the plain listener).
            startups.release(arrival.slot)
            logger.debug("connection speaks tcpmux", metadata: ["client": "\(arrival.client)", "address": "\(arrival.local)"])
            do {
                try Syscall.setNonBlocking(arrival.socket.rawValue)
            } catch {
                logger.info("connection failed", metadata: ["client": "\(arrival.client)", "reason": "\(error.reason)"])
                arrival.socket.close()
                return
            }
            serveTCPMUX(arrival.socket, client: arrival.client, local: arrival.local)
        case .gone(let why):
            logger.debug("connection closed before it spoke", metadata: ["client": "\(arrival.client)", "reason": "\(why)"])
            startups.release(arrival.slot)
            arrival.socket.close()
        }
    }

    /// A TCPMUX connection (non-blocking), from a plain TCPMUX listener or a shared
    /// port: admitted against the TCPMUX startup limits, which apply to it for its
    /// whole life (counted apart from SSH's), and handed to the least busy worker;
    /// over the limits it gets RFC 1078's `-` reply and a close.
    func serveTCPMUX(_ socket: Descriptor, client: Endpoint, local: Endpoint) {
        let limits = config.snapshot.limits
        let source = StartupSource.key(client.address, prefix6: limits.maxStartupsPerSourcePrefix6)
        guard let slot = tcpmuxSources.admit(source: source, limits: limits) else {
            logger.info("tcpmux connection dropped: too many from this address", metadata: ["client": "\(client)"])
            // RFC 1078's negative reply, and a lingering close so that it arrives.
            _ = Array("-too many connections from this address\r\n".utf8).withUnsafeBytes { try? Syscall.send(socket.rawValue, $0) }
            workers.min { $0.connectionCount < $1.connectionCount }!.lingerAfterReply(socket)
            return
        }
        let worker = workers.min { $0.connectionCount < $1.connectionCount }!
        worker.adoptTCPMUX(socket, client: client, local: local, slot: slot)
    }
}

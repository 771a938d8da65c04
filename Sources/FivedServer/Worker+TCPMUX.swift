import FivedCore
import FivedSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension Worker {
    func startTCPMUX(_ socket: Descriptor, client: Endpoint, local: Endpoint, slot: StartupSlot) {
        let t = TCPMUXConnection(socket: socket, client: client, local: local, slot: slot)
        t.logger = logger
        tcpmux[ObjectIdentifier(t)] = t
        if stopping { t.stop() }
        settle(t)
    }

    func tcpmuxClientEvent(_ t: TCPMUXConnection, _ events: UInt32) {
        if t.isReadingName {
            t.readName { decideTCPMUX($0, t) }
            if t.isConnecting { watchPending(t) }
        } else {
            t.clientEvent(events)
            t.pump()
        }
        settle(t)
    }

    /// RFC 1078: HELP lists the offered names; a name offered here gets `+` and
    /// its service; anything else `-` with a reason.
    private func decideTCPMUX(_ request: TCPMUXRequest, _ t: TCPMUXConnection) -> TCPMUXConnection.Decision {
        let config = config.snapshot
        switch request {
        case .help:
            let names = config.sortedServices.filter(\.tcpmux).map { $0.name.value + "\r\n" }.joined()
            return .init(reply: names, service: "help")
        case .invalid(let why):
            DaemonMetrics.shared.refused(.invalidName(why))
            return .init(reply: "-\(why)\r\n", service: "-")
        case .service(let name):
            guard let service = config.services[name], service.tcpmux else {
                // A configured service not offered on TCPMUX is one the caller may not open.
                DaemonMetrics.shared.refused(config.services[name] == nil ? .unknownService(name) : .notAllowed(name))
                return .init(reply: "-service not available\r\n", service: name.value)
            }
            t.meterNamed(name.value)
            let handOff = CallerHandOff(
                service: name, caller: nil, clientAddress: t.client.address, clientPort: t.client.port,
                localAddress: t.local.address, localPort: t.local.port, channelID: nil)
            do {
                let timeout = config.connectTimeoutMilliseconds(for: service)
                let start: BackendConnector.Start =
                    service.backend.isExec
                    ? .pending(
                        try startProcess(service, environment: handOff.environment, source: t.client.address, terminal: nil, timeoutMilliseconds: timeout))
                    : try BackendConnector.start(service.backend, timeoutMilliseconds: timeout)
                var preamble: [UInt8] = []
                if service.proxyProtocol, !service.backend.isExec, let header = try? handOff.proxyHeader?.encoded() {
                    preamble = header
                }
                return .init(reply: "+\r\n", backend: start, preamble: preamble, service: name.value)
            } catch {
                t.meterBackendUnavailable()
                logger.info("tcpmux backend unavailable", metadata: ["client": "\(t.client)", "service": "\(name)", "reason": "\(error)"])
                return .init(reply: "-service not available\r\n", service: name.value)
            }
        }
    }

    /// Keeps a TCPMUX connection's registrations in line; tears it down when finished.
    func settle(_ t: TCPMUXConnection) {
        if let reason = t.ended {
            cancelConnect(t)
            poller.remove(&t.clientRegistration)
            poller.remove(&t.backendRegistration)
            poller.remove(&t.stderrRegistration)
            t.flushStderr()
            if let backend = t.takeBackend() { retire(backend) }
            if t.lastWordWritten {
                linger(t.socket)  // a `-` reply or the HELP list: make sure it arrives
            } else {
                t.socket.close()
            }
            guard tcpmux.removeValue(forKey: ObjectIdentifier(t)) != nil else { return }
            tcpmuxSources.release(t.slot)
            t.meterEnded(reason)
            logger.info(
                "tcpmux closed",
                metadata: [
                    "client": "\(t.client)", "service": "\(t.service)", "form": "tcpmux", "bytes_in": "\(t.bytesIn)",
                    "bytes_out": "\(t.bytesOut)", "duration_ms": "\(MonotonicClock.now - t.startedAt)", "reason": "\(reason)",
                ])
            return
        }
        poller.update(&t.clientRegistration, fd: t.socket.rawValue, events: t.wantedClientEvents, target: .tcpmuxClient(t))
        guard let backend = t.backend else { return }
        if let stream = backend.stream {
            poller.update(&t.backendRegistration, fd: stream.rawValue, events: t.wantedBackendEvents, target: .tcpmuxBackend(t))
        }
        if let errors = backend.errors {
            poller.update(&t.stderrRegistration, fd: errors.rawValue, events: t.wantedStderrEvents, target: .tcpmuxStderr(t))
        }
    }

    /// TCPMUX name timeouts, and the bytes relayed meanwhile for the metrics.
    func tickTCPMUX(now: Int64) {
        for t in tcpmux.values {
            if t.isReadingName && now >= t.deadline {
                t.expire()
                settle(t)
            } else {
                t.meterTick()
            }
        }
    }
}

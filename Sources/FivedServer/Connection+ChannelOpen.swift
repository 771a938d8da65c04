import FivedCore
import FivedRuntime
import FivedSystem
import LibSSH
import Logging

/// Something waiting for a backend connect to finish: a direct-tcpip open (its
/// answer waits), or a session channel whose exec/subsystem request waits.
protocol AwaitsBackend: AnyObject {
    var pendingBackend: PendingBackend? { get }
    var registeredConnect: PollRegistration { get set }
    /// The connect finished (or failed, or timed out); the worker has unregistered it.
    func backendConnectEnded(_ result: Result<BackendConnection, BackendFailure>)
}

/// A direct-tcpip open whose backend is still connecting: the client's open is
/// answered (confirmation or failure) once the connect finishes, as sshd
/// answers a direct-tcpip open only after its connect (channels.c).
final class PendingOpen: AwaitsBackend {
    unowned let connection: Connection
    let message: SSHMessage
    let name: ServiceName
    let requested: String
    let channelID: UInt64
    let preamble: [UInt8]
    private(set) var pendingBackend: PendingBackend?
    var registeredConnect = PollRegistration.none

    init(
        connection: Connection, message: SSHMessage, name: ServiceName, requested: String, channelID: UInt64,
        preamble: [UInt8], pending: PendingBackend
    ) {
        self.connection = connection
        self.message = message
        self.name = name
        self.requested = requested
        self.channelID = channelID
        self.preamble = preamble
        self.pendingBackend = pending
    }

    func backendConnectEnded(_ result: Result<BackendConnection, BackendFailure>) {
        pendingBackend = nil
        connection.pendingOpens.removeValue(forKey: ObjectIdentifier(self))
        switch result {
        case .success(let backend):
            connection.acceptDirect(message, backend: backend, name: name, channelID: channelID, preamble: preamble)
        case .failure(let failure):
            connection.backendUnavailable(channelID, service: name.value)
            connection.releaseKeyChannel()
            connection.refuseOpen(message, requested: requested, form: .directTCPIP, why: "backend unavailable: \(failure)")
        }
    }
}

extension ServiceChannel: AwaitsBackend {
    func backendConnectEnded(_ result: Result<BackendConnection, BackendFailure>) {
        pendingBackend = nil
        guard !finished else {
            if case .success(let backend) = result { connection.worker.retire(backend) }
            return
        }
        switch result {
        case .success(let backend):
            attach(backend, preamble: pendingPreamble)
        case .failure(let failure):
            connection.backendUnavailable(id, service: service, on: self)
            connection.logRefusal(service, form: form ?? .exec, why: "backend unavailable: \(failure)")
            respond(form: form ?? .exec, service: service, stdout: "", stderr: "fived: \(AccessPolicy.refusalText)\n", exitStatus: 1)
        }
    }
}

extension Connection {
    /// The smallest maximum packet size a peer may ask for (RFC 4254 §5.1 leaves
    /// it to the implementation; OpenSSH asks 32,768, PuTTY 16,384).
    static let minimumMaxPacket: UInt32 = 256

    /// SSH_MSG_CHANNEL_OPEN from an authenticated client.
    func openChannel(_ message: SSHMessage, _ open: SSHMessage.ChannelOpen) {
        guard !closing else {
            message.refuse()
            return
        }
        guard admitsAnotherChannel() else {
            DaemonMetrics.shared.refused(.maxChannelsPerConnection)
            logger.info("channel refused", metadata: ["client": "\(client)", "reason": "max_channels_per_connection reached"])
            message.refuse()
            return
        }
        // libssh sends data in packets of (max packet - 10) bytes and loops forever
        // at 10 (channels.c:1444): tiny packets would pin a worker. Refuse them, and
        // refuse when libssh's layout could not be checked (fail closed).
        guard let maxPacket = open.maxPacket, maxPacket >= Self.minimumMaxPacket else {
            DaemonMetrics.shared.refused(.maxPacketTooSmall)
            logger.info(
                "channel refused",
                metadata: [
                    "user": "\(caller?.user ?? "-")", "client": "\(client)",
                    "reason":
                        "\(open.maxPacket.map { "maximum packet size \($0) is below \(Self.minimumMaxPacket)" } ?? "the peer's maximum packet size cannot be read")",
                ])
            message.refuse()
            return
        }
        if peerNode != nil { return openRelayed(message, open) }
        switch open.type {
        case .session:
            if sessionsEnded {
                protocolViolation("a session open after no-more-sessions@openssh.com")
                return
            }
            _ = acceptAwaitingRequest(message, isSessionChannel: true)
        case .directTCPIP:
            guard let destination = open.destination else {
                message.refuse()
                return
            }
            openDirect(message, requested: destination.host, port: destination.port)
        case .unknown:
            DaemonMetrics.shared.refused(.unsupportedChannelType)
            logger.info(
                "channel refused",
                metadata: [
                    "client": "\(client)", "user": "\(caller?.user ?? "-")",
                    "reason":
                        "unsupported channel type (direct-streamlocal?): libssh 0.10 cannot read it; use -L PORT:NAME:1 or fived-connect -L /PATH.sock:NAME",
                ])
            message.refuse()
        case .forwardedTCPIP, .x11, .authAgent:
            message.refuse()
        }
    }

    /// Accepts `message` as a channel counted against the caller's key that waits for
    /// its first request (a session, or help and status by -W); nil when the key is at
    /// its limit (the open is refused) or the accept failed.
    private func acceptAwaitingRequest(_ message: SSHMessage, isSessionChannel: Bool) -> ServiceChannel? {
        guard takeKeyChannel() else {
            message.refuse()
            return nil
        }
        guard let raw = message.acceptChannelOpen() else {
            releaseKeyChannel()
            return nil
        }
        let channel = ServiceChannel(id: makeChannelID(), channel: raw, connection: self, isSessionChannel: isSessionChannel, phase: .awaitingRequest)
        channel.countsAgainstKey = true
        adopt(channel)
        return channel
    }

    private func openDirect(_ message: SSHMessage, requested: String, port: UInt32) {
        guard let caller else { return }
        let config = worker.config.snapshot
        let decision = AccessPolicy.decide(
            caller: caller, form: .directTCPIP, requested: requested, requestedPort: port,
            services: lookup(config), statusAllow: config.statusAllow, metricsAllow: config.metricsAllow)
        switch decision {
        case .open(let name):
            guard takeKeyChannel() else {
                message.refuse()
                return
            }
            let channelID = makeChannelID()
            let start: BackendConnector.Start
            let preamble: [UInt8]
            do {
                backendConnectStarting(channelID)
                (start, preamble) = try startBackend(name, caller: caller, config: config, channelID: channelID)
            } catch {
                backendUnavailable(channelID, service: name.value)
                releaseKeyChannel()
                refuseOpen(message, requested: requested, form: .directTCPIP, why: "backend unavailable: \(error)")
                return
            }
            switch start {
            case .ready(let backend):
                acceptDirect(message, backend: backend, name: name, channelID: channelID, preamble: preamble)
            case .pending(let backend):
                let pending = PendingOpen(
                    connection: self, message: message, name: name, requested: requested,
                    channelID: channelID, preamble: preamble, pending: backend)
                pendingOpens[ObjectIdentifier(pending)] = pending
                worker.watchPending(pending)
            }
        case .help, .status:
            guard let channel = acceptAwaitingRequest(message, isSessionChannel: false) else { return }
            if decision == .status {
                worker.answerStatus(channel, form: .directTCPIP)
            } else {
                channel.respond(form: .directTCPIP, service: "help", stdout: helpText(caller: caller, config: config), exitStatus: 0)
            }
        case .refused(let refusal):
            countRefusal(refusal)
            refuseOpen(message, requested: requested, form: .directTCPIP, why: "\(refusal)")
        }
    }

    /// Confirms a direct-tcpip open whose backend is ready and joins the two.
    /// (The caller took a `max_channels_per_key` count for it; the channel keeps it.)
    func acceptDirect(_ message: SSHMessage, backend: BackendConnection, name: ServiceName, channelID: UInt64, preamble: [UInt8]) {
        guard !closing, let raw = message.acceptChannelOpen() else {
            releaseKeyChannel()
            worker.retire(backend)
            return
        }
        let channel = ServiceChannel(id: channelID, channel: raw, connection: self, isSessionChannel: false, phase: .awaitingRequest)
        channel.countsAgainstKey = true
        adopt(channel)
        channel.name(form: .directTCPIP, service: name.value)
        channel.attach(backend, preamble: preamble)
    }

    /// Refuses an open (code 1, the same reply for every cause) and logs why.
    func refuseOpen(_ message: SSHMessage, requested: String, form: ChannelForm, why: String) {
        logRefusal(ServiceName.printable(requested), form: form, why: why)
        message.refuse()
    }

    func logRefusal(_ shownName: String, form: ChannelForm, why: String) {
        logger.info(
            "channel refused",
            metadata: [
                "user": "\(caller?.user ?? "-")", "fingerprint": "\(caller?.key.blob.fingerprint ?? "-")",
                "client": "\(client)", "service": "\(shownName)", "form": "\(form.rawValue)",
                "reason": "\(why)",
            ])
    }

    // MARK: Session channel requests

    /// A channel request on one of this connection's channels.
    func route(_ message: SSHMessage, _ request: SSHMessage.ChannelRequest, on channel: ServiceChannel) {
        switch request.type {
        case .exec(let command):
            routeSessionRequest(message, on: channel, form: .exec, requested: command)
        case .subsystem(let name):
            routeSessionRequest(message, on: channel, form: .subsystem, requested: name)
        case .shell:
            routeSessionRequest(message, on: channel, form: .shell, requested: nil)
        case .unknown where request.wantsReply == false && channel.isSessionChannel && !channel.hasTerminal && peerIsOpenSSH:
            // libssh keeps no name for requests it does not parse. Of what OpenSSH's
            // client sends, only `eow@openssh.com` comes without want-reply (`break`
            // needs a terminal: clientloop.c sends it from the escape menu, which
            // exists only with a tty; env, window-change and auth-agent-req are
            // parsed or answered by libssh). See docs/libssh.md.
            channel.peerStoppedReading()
        default:
            channel.handleRequest(message, request)
        }
    }

    /// exec / subsystem / shell on a session channel: decide, then connect the
    /// backend or answer from fived. Refusals are answered on the channel (reason
    /// on stderr, exit status 1), since the channel is already open; the
    /// request's own reply waits until the backend is ready or the answer known.
    private func routeSessionRequest(_ message: SSHMessage, on channel: ServiceChannel, form: ChannelForm, requested: String?) {
        guard channel.isSessionChannel else {
            channel.output.reply(message, success: false)
            return
        }
        switch channel.sessionRequestDisposition() {
        case .ignore: return
        case .refuse:
            channel.output.reply(message, success: false)
            return
        case .route: break
        }
        guard let caller, !closing else { return }
        channel.holdRequest(message)
        let config = worker.config.snapshot
        let decision = AccessPolicy.decide(
            caller: caller, form: form, requested: requested, requestedPort: nil,
            services: lookup(config), statusAllow: config.statusAllow, metricsAllow: config.metricsAllow)
        let shownName = requested.map { ServiceName.printable($0) } ?? "-"
        switch decision {
        case .open(let name):
            channel.name(form: form, service: name.value)
            do {
                backendConnectStarting(channel.id)
                let (start, preamble) = try startBackend(name, caller: caller, config: config, channelID: channel.id, terminal: channel.terminal)
                switch start {
                case .ready(let backend):
                    channel.attach(backend, preamble: preamble)
                case .pending(let backend):
                    channel.pendingPreamble = preamble
                    channel.awaitBackend(backend)
                    worker.watchPending(channel)
                }
            } catch {
                backendUnavailable(channel.id, service: name.value, on: channel)
                logRefusal(shownName, form: form, why: "backend unavailable: \(error)")
                channel.respond(form: form, service: name.value, stdout: "", stderr: "fived: \(AccessPolicy.refusalText)\n", exitStatus: 1)
            }
        case .help:
            let list = helpText(caller: caller, config: config)
            if form == .shell {
                channel.respond(
                    form: form, service: "help", stdout: "",
                    stderr: "fived: name a service, e.g. ssh -p PORT HOST SERVICE. You may open:\n" + list, exitStatus: 1)
            } else {
                channel.respond(form: form, service: "help", stdout: list, exitStatus: 0)
            }
        case .status:
            worker.answerStatus(channel, form: form)
        case .refused(let refusal):
            countRefusal(refusal, on: channel)
            logRefusal(shownName, form: form, why: "\(refusal)")
            channel.respond(form: form, service: shownName, stdout: "", stderr: "fived: \(AccessPolicy.refusalText)\n", exitStatus: 1)
        }
    }

    /// Whether a pty-req may be granted to this connection's caller: some
    /// `pty = true` service is one its exec requests would open.
    func grantsTerminal() -> Bool {
        guard let caller else { return false }
        let config = worker.config.snapshot
        let terminals = config.sortedServices.filter(\.pty).map(\.name)
        guard !terminals.isEmpty else { return false }
        return AccessPolicy.grantsTerminal(caller: caller, terminalServices: terminals, services: lookup(config), statusAllow: config.statusAllow)
    }

    // MARK: Services

    /// Configured services first, then published names (which carry no allow list:
    /// every key whose own options permit it may open them).
    func lookup(_ config: Configuration) -> (ServiceName) -> ServiceAccess? {
        let publications = worker.publications
        return { name in
            if let service = config.services[name] { return ServiceAccess(name: service.name, allow: service.allow) }
            if publications.lookup(name) != nil { return ServiceAccess(name: name, allow: nil) }
            return self.fleetAccess(name, config)
        }
    }

    func helpText(caller: Caller, config: Configuration) -> String {
        var entries = config.sortedServices.map { ServiceAccess(name: $0.name, allow: $0.allow) }
        entries += worker.publications.names.filter { config.services[$0] == nil }.map { ServiceAccess(name: $0, allow: nil) }
        entries += fleetHelpEntries(config)
        let names = AccessPolicy.visibleServices(
            caller: caller, services: entries, statusAllow: config.statusAllow, metricsAllow: config.metricsAllow)
        return names.sorted().map { $0.value + "\n" }.joined()
    }

    /// Starts the backend of a configured or published service; returns how it
    /// began and the bytes to send before the caller's (a PROXY v2 header).
    /// `terminal` is the pty granted to a session channel, used only by a `pty = true` service;
    /// `given`: what the service learns, when it is not this connection's caller (a relayed one).
    func startBackend(
        _ name: ServiceName, caller: Caller, config: Configuration, channelID: UInt64, terminal: TerminalRequest? = nil,
        handOff given: CallerHandOff? = nil
    ) throws(BackendFailure) -> (BackendConnector.Start, [UInt8]) {
        if name == .metrics { return (.ready(try MetricsEndpoint.shared.connect()), []) }

        let handOff = given ?? handOff(service: name, caller: caller, channelID: channelID)
        if let service = config.services[name] ?? exportedService(name, config) {
            let timeout = config.connectTimeoutMilliseconds(for: service)
            if service.backend.isExec {
                let pending = try worker.startProcess(
                    service, environment: handOff.environment, source: handOff.clientAddress, terminal: terminal,
                    timeoutMilliseconds: timeout)
                return (.pending(pending), [])
            }
            let start = try BackendConnector.start(service.backend, timeoutMilliseconds: timeout)
            var preamble: [UInt8] = []
            if service.proxyProtocol, !service.backend.isExec {
                preamble = proxyHeader(handOff)
            }
            return (start, preamble)
        }
        if let relay = try relayedBackend(name, handOff: handOff) { return relay }
        return try publishedBackend(name, handOff: handOff)
    }

    /// The PROXY v2 header for `handOff`, or none (logged) if it cannot be encoded.
    func proxyHeader(_ handOff: CallerHandOff) -> [UInt8] {
        do {
            return try handOff.proxyHeader?.encoded() ?? []
        } catch {
            logger.warning("PROXY header not sent", metadata: ["service": "\(handOff.service)", "reason": "\(error)"])
            return []
        }
    }
}

import CSystem
import FivedCore
import Foundation
import LibSSH
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Channel ids, unique in the process (the PROXY v2 UNIQUE_ID and log lines carry them).
private let channelSerial = Atomic<UInt64>(0)

/// One SSH connection on a worker: authentication, then routing each channel to
/// its service. Every callback runs on the worker's thread.
final class Connection: SSHServerSessionDelegate {
    /// sshd's MaxAuthTries default: failed attempts before the connection is dropped.
    static let maximumAuthAttempts = 6

    let id: UInt64
    let session: SSHSession
    /// This session's private poll context (see Poller).
    let event: SSHEvent
    /// The SSH socket, as accepted (libssh may close it before teardown).
    let socketFD: Int32
    var pollerToken: UInt64 = 0
    var registeredEvents: UInt32 = 0
    unowned let worker: Worker
    let client: Endpoint
    let local: Endpoint
    let logger: Logger
    private(set) var caller: Caller?
    private var failedAttempts = 0
    private(set) var holdsStartupSlot = true
    let acceptedAt = MonotonicClock.now
    let loginDeadline: Int64
    private(set) var channels: [ObjectIdentifier: ServiceChannel] = [:]
    private(set) var closing = false
    private(set) var closeReason = "disconnected"

    // Coalescing client data toward backends (see ServiceChannel.coalesceBytes).
    /// True while the worker lets libssh read this session's socket: more of the
    /// client's data is probably on its way, so small amounts may wait.
    var isReading = false
    /// Channels holding back client data, and until when.
    var heldDeliveries = HeldDeliveries<ServiceChannel>()

    init(id: UInt64, session: SSHSession, worker: Worker, client: Endpoint, local: Endpoint, loginGraceSeconds: Int, logger: Logger) throws(LibSSHError) {
        self.id = id
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

    /// Marks the connection for teardown at the worker's next pass.
    func close(reason: String) {
        guard !closing else { return }
        closing = true
        closeReason = reason
        worker.markClosing(self)
    }

    /// Gives back the unauthenticated-connection slot (once).
    func releaseStartupSlot() {
        guard holdsStartupSlot else { return }
        holdsStartupSlot = false
        worker.startups.release(source: client.address)
    }

    // MARK: Authentication

    func session(_ session: SSHSession, authenticate user: String, key: BorrowedSSHKey, state: PublicKeyAuthState) -> Bool {
        guard !closing, caller == nil else { return false }
        guard failedAttempts < Self.maximumAuthAttempts else {
            close(reason: "too many authentication failures")
            return false
        }
        guard let bytes = key.publicBlob(), let blob = PublicKeyBlob(bytes: bytes) else {
            failedAttempts += 1
            return false
        }
        let config = worker.config.snapshot
        let candidates = worker.authorizedKeys.keys(for: user, patterns: config.authorizedKeys)
        let result = KeyMatcher.match(presented: blob, candidates: candidates, clientAddress: client.address, now: Int64(time(nil)))
        switch result {
        case .accepted(let entry):
            guard state == .verified else { return true }  // probe: "this key would do"
            caller = Caller(user: user, key: entry, address: client.address, port: client.port)
            releaseStartupSlot()
            logger.info("authenticated", metadata: [
                "user": "\(user)", "fingerprint": "\(blob.fingerprint)", "client": "\(client)",
                "comment": "\(entry.comment)", "key_file": "\(entry.file):\(entry.line)",
            ])
            return true
        case .notListed, .refused:
            failedAttempts += 1
            let reason = "\(result)"
            logger.info("authentication failed", metadata: [
                "user": "\(user)", "fingerprint": "\(blob.fingerprint)", "client": "\(client)",
                "reason": "\(reason)",
            ])
            if failedAttempts >= Self.maximumAuthAttempts {
                close(reason: "too many authentication failures")
            }
            return false
        }
    }

    // MARK: Channel opens

    func sessionOpensSessionChannel(_ session: SSHSession) -> SSHChannel? {
        guard caller != nil, !closing, admitsAnotherChannel() else { return nil }
        guard let channel = SSHChannel.makeSessionChannel(on: session) else { return nil }
        let pump = ServiceChannel(id: makeChannelID(), channel: channel, connection: self, isSessionChannel: true)
        channel.install(delegate: pump)
        channels[ObjectIdentifier(pump)] = pump
        return channel
    }

    func session(_ session: SSHSession, received message: borrowing SSHMessage) -> Bool {
        switch message.kind {
        case .channelOpen(.directTCPIP):
            guard let caller, !closing else { return false }
            guard admitsAnotherChannel() else {
                logger.info("channel refused", metadata: ["client": "\(client)", "reason": "max_channels_per_connection reached"])
                return false
            }
            guard let destination = message.openDestination else { return false }
            return openDirect(message, caller: caller, requested: destination.host, port: destination.port)
        case .channelOpen(.unknown):
            if caller != nil {
                logger.info("channel refused", metadata: [
                    "client": "\(client)", "user": "\(caller!.user)",
                    "reason": "unsupported channel type (direct-streamlocal?): libssh 0.10 cannot read it; use -L PORT:NAME:1 or fived-connect -L /PATH.sock:NAME",
                ])
            }
            return false
        case .globalRequest(.tcpipForward):
            guard let caller, !closing, let request = message.globalRequestAddress else { return false }
            return publish(message, caller: caller, address: request.address, port: request.port)
        case .globalRequest(.cancelTCPIPForward):
            guard caller != nil, let request = message.globalRequestAddress, let name = ServiceName(request.address),
                  worker.publications.release(name, connectionID: id) else { return false }
            logger.info("unpublished", metadata: ["user": "\(caller!.user)", "client": "\(client)", "service": "\(name)"])
            message.acceptGlobalRequest(boundPort: 0)
            return true
        default:
            // Other global requests (keepalive included: a failure reply is an answer),
            // x11/agent/pty requests, other auth methods: libssh's default refusal.
            return false
        }
    }

    /// `tcpip-forward` whose bind address is a service name: publish it while
    /// this connection lives, if the key's permitlisten allows and the name is free.
    private func publish(_ message: borrowing SSHMessage, caller: Caller, address: String, port: UInt32) -> Bool {
        let meta: Logger.Metadata = [
            "user": "\(caller.user)", "fingerprint": "\(caller.key.blob.fingerprint)", "client": "\(client)",
            "service": "\(ServiceName.printable(address))",
        ]
        switch AccessPolicy.mayPublish(caller: caller, name: address) {
        case .refused(let refusal):
            logger.info("publish refused", metadata: meta.merging(["reason": "\(refusal)"]) { $1 })
            return false
        case .publish(let name):
            if worker.config.snapshot.services[name] != nil {
                logger.info("publish refused", metadata: meta.merging(["reason": "a configured service has that name"]) { $1 })
                return false
            }
            let publication = Publications.Publication(worker: worker, connectionID: id, address: address, port: port)
            guard worker.publications.claim(name, publication) else {
                logger.info("publish refused", metadata: meta.merging(["reason": "already published"]) { $1 })
                return false
            }
            logger.info("published", metadata: meta)
            message.acceptGlobalRequest(boundPort: UInt16(truncatingIfNeeded: port == 0 ? 1 : port))
            return true
        }
    }

    private func admitsAnotherChannel() -> Bool {
        channels.count < worker.config.snapshot.limits.maxChannelsPerConnection
    }

    private func makeChannelID() -> UInt64 {
        channelSerial.add(1, ordering: .relaxed).newValue
    }

    private func openDirect(_ message: borrowing SSHMessage, caller: Caller, requested: String, port: UInt32) -> Bool {
        let config = worker.config.snapshot
        let decision = AccessPolicy.decide(caller: caller, form: .directTCPIP, requested: requested, requestedPort: port,
                                           services: lookup(config), statusAllow: config.statusAllow)
        switch decision {
        case .open(let name):
            let channelID = makeChannelID()
            let backend: BackendConnection
            let preamble: [UInt8]
            do {
                (backend, preamble) = try connectBackend(name, caller: caller, config: config, channelID: channelID)
            } catch {
                return refuse(requested, form: .directTCPIP, why: "backend unavailable: \(error)")
            }
            guard let channel = message.acceptChannel() else { return false }
            let pump = ServiceChannel(id: channelID, channel: channel, connection: self, isSessionChannel: false)
            channel.install(delegate: pump)
            channels[ObjectIdentifier(pump)] = pump
            pump.attach(backend, form: .directTCPIP, service: name.value, preamble: preamble)
            return true
        case .help, .status:
            guard let channel = message.acceptChannel() else { return false }
            let pump = ServiceChannel(id: makeChannelID(), channel: channel, connection: self, isSessionChannel: false)
            channel.install(delegate: pump)
            channels[ObjectIdentifier(pump)] = pump
            if decision == .status {
                worker.answerStatus(pump, form: .directTCPIP)
            } else {
                pump.respond(form: .directTCPIP, service: "help", stdout: helpText(caller: caller, config: config), exitStatus: 0)
            }
            return true
        case .refused(let refusal):
            return refuse(requested, form: .directTCPIP, why: "\(refusal)")
        }
    }

    private func refuse(_ requested: String, form: ChannelForm, why: String) -> Bool {
        logger.info("channel refused", metadata: [
            "user": "\(caller?.user ?? "-")", "fingerprint": "\(caller?.key.blob.fingerprint ?? "-")",
            "client": "\(client)", "service": "\(ServiceName.printable(requested))", "form": "\(form.rawValue)",
            "reason": "\(why)",
        ])
        return false
    }

    /// exec / subsystem / shell on a session channel: decide, then connect the
    /// backend or answer from fived. Refusals are answered on the channel (reason
    /// on stderr, exit status 1), since the channel is already open.
    func routeSessionRequest(_ pump: ServiceChannel, form: ChannelForm, requested: String?) -> Bool {
        guard let caller, !closing else { return false }
        let config = worker.config.snapshot
        let decision = AccessPolicy.decide(caller: caller, form: form, requested: requested, requestedPort: nil,
                                           services: lookup(config), statusAllow: config.statusAllow)
        let shownName = requested.map { ServiceName.printable($0) } ?? "-"
        switch decision {
        case .open(let name):
            do {
                let (backend, preamble) = try connectBackend(name, caller: caller, config: config, channelID: pump.id)
                pump.attach(backend, form: form, service: name.value, preamble: preamble)
                } catch {
                _ = refuse(shownName, form: form, why: "backend unavailable: \(error)")
                pump.respond(form: form, service: name.value, stdout: "", stderr: "fived: \(AccessPolicy.refusalText)\n", exitStatus: 1)
            }
            return true
        case .help:
            let list = helpText(caller: caller, config: config)
            if form == .shell {
                pump.respond(form: form, service: "help", stdout: "",
                             stderr: "fived: name a service, e.g. ssh -p PORT HOST SERVICE. You may open:\n" + list, exitStatus: 1)
            } else {
                pump.respond(form: form, service: "help", stdout: list, exitStatus: 0)
            }
            return true
        case .status:
            worker.answerStatus(pump, form: form)
            return true
        case .refused(let refusal):
            _ = refuse(shownName, form: form, why: "\(refusal)")
            pump.respond(form: form, service: shownName, stdout: "", stderr: "fived: \(AccessPolicy.refusalText)\n", exitStatus: 1)
            return true
        }
    }

    /// Configured services first, then published names (which carry no allow list:
    /// every key whose own options permit it may open them).
    private func lookup(_ config: Configuration) -> (ServiceName) -> ServiceAccess? {
        let publications = worker.publications
        return { name in
            if let service = config.services[name] { return ServiceAccess(name: service.name, allow: service.allow) }
            return publications.lookup(name) == nil ? nil : ServiceAccess(name: name, allow: nil)
        }
    }

    private func helpText(caller: Caller, config: Configuration) -> String {
        var entries = config.sortedServices.map { ServiceAccess(name: $0.name, allow: $0.allow) }
        entries += worker.publications.names.filter { config.services[$0] == nil }.map { ServiceAccess(name: $0, allow: nil) }
        let names = AccessPolicy.visibleServices(caller: caller, services: entries, statusAllow: config.statusAllow)
        return names.sorted().map { $0.value + "\n" }.joined()
    }

    /// Connects the backend of a configured or published service.
    private func connectBackend(_ name: ServiceName, caller: Caller, config: Configuration, channelID: UInt64) throws(BackendFailure) -> (BackendConnection, [UInt8]) {
        if let service = config.services[name] {
            let backend = try BackendConnector.connect(service.backend, environment: environment(for: service, caller: caller))
            return (backend, preamble(for: service, caller: caller, channelID: channelID))
        }
        guard let publication = worker.publications.lookup(name) else {
            throw BackendFailure(description: "no service named \(name)")
        }
        // A published name lives on its publisher's connection, perhaps on another
        // worker thread: join the two channels through a socketpair, each end
        // pumped by its own worker like any socket backend.
        var pair: [Int32] = [-1, -1]
        guard fived_socketpair_cloexec(&pair) == 0 else {
            throw BackendFailure(description: "socketpair: \(String(cString: strerror(errno)))")
        }
        do {
            try Sys.setNonBlocking(pair[0])
            try Sys.setNonBlocking(pair[1])
        } catch {
            Sys.close(pair[0]); Sys.close(pair[1])
            throw BackendFailure(description: "\(error)")
        }
        publication.worker.openForwarded(
            connectionID: publication.connectionID, name: name, address: publication.address, port: publication.port,
            originator: client, fd: pair[1])
        // A publisher asks for the caller's identity as a PROXY v2 header by
        // publishing on port 2 (`ssh -R NAME:2:...`); port 1 gives the raw stream.
        let header = publication.port == Publications.proxyProtocolPort
            ? proxyHeader(service: name, caller: caller, channelID: channelID) : []
        return (BackendConnection(fd: pair[0]), header)
    }

    // MARK: What the service learns

    /// The exec environment: SPEC's FIVED_* and UCSPI names, nothing of fived's own.
    func environment(for service: ServiceConfig, caller: Caller) -> [String] {
        [
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "FIVED_SERVICE=\(service.name.value)",
            "FIVED_USER=\(caller.user)",
            "FIVED_KEY_FINGERPRINT=\(caller.key.blob.fingerprint)",
            "FIVED_KEY_COMMENT=\(caller.key.comment)",
            "FIVED_CLIENT_ADDR=\(client.address)",
            "FIVED_CLIENT_PORT=\(client.port)",
            "PROTO=TCP",
            "TCPREMOTEIP=\(client.address)",
            "TCPREMOTEPORT=\(client.port)",
            "TCPLOCALIP=\(local.address)",
            "TCPLOCALPORT=\(local.port)",
        ].map { $0.replacingNUL() }
    }

    /// The PROXY v2 header for services that asked for one.
    private func preamble(for service: ServiceConfig, caller: Caller, channelID: UInt64) -> [UInt8] {
        guard service.proxyProtocol else { return [] }
        if case .exec = service.backend { return [] }  // an exec service gets the environment instead
        return proxyHeader(service: service.name, caller: caller, channelID: channelID)
    }

    /// SPEC's PROXY v2 header: addresses, then UNIQUE_ID and the 0xE0-0xE3 TLVs.
    private func proxyHeader(service: ServiceName, caller: Caller, channelID: UInt64) -> [UInt8] {
        guard let source = IPAddress(client.address), let destination = IPAddress(local.address) else { return [] }
        let header = ProxyV2Header(
            sourceAddress: source, sourcePort: client.port, destinationAddress: destination, destinationPort: local.port,
            uniqueID: Array(String(channelID).utf8), service: service, user: caller.user,
            keyFingerprint: caller.key.blob.fingerprint, keyComment: caller.key.comment)
        do {
            return try header.encoded()
        } catch {
            logger.warning("PROXY header not sent", metadata: ["service": "\(service)", "reason": "\(error)"])
            return []
        }
    }

    // MARK: Channel lifetime

    /// Called by a channel once it has sent CLOSE; logs its end and tears it down.
    func channelFinished(_ pump: ServiceChannel, reason: String) {
        var meta = channelMetadata(pump)
        meta["bytes_in"] = "\(pump.bytesIn)"
        meta["bytes_out"] = "\(pump.bytesOut)"
        meta["duration_ms"] = "\(MonotonicClock.now - pump.startedAt)"
        meta["reason"] = "\(reason)"
        logger.info("channel closed", metadata: meta)
        worker.channelFinished(pump)
    }

    func forget(_ pump: ServiceChannel) {
        channels.removeValue(forKey: ObjectIdentifier(pump))
    }

    /// Adopts a channel this connection opened toward its client (forwarded-tcpip).
    func adopt(_ pump: ServiceChannel) {
        channels[ObjectIdentifier(pump)] = pump
    }

    func nextChannelID() -> UInt64 { makeChannelID() }

    func channelMetadata(_ pump: ServiceChannel) -> Logger.Metadata {
        [
            "user": "\(caller?.user ?? "-")",
            "fingerprint": "\(caller?.key.blob.fingerprint ?? "-")",
            "client": "\(client)",
            "service": "\(pump.service)",
            "form": "\(pump.formLabel)",
            "channel": "\(pump.id)",
        ]
    }
}

extension String {
    /// exec environment strings cannot carry NUL; replace it rather than truncate silently.
    fileprivate func replacingNUL() -> String {
        contains("\u{0}") ? replacingOccurrences(of: "\u{0}", with: "?") : self
    }
}

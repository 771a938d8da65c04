import FivedCore
import Foundation
import LibSSH
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One SSH connection on a worker: authentication, then routing each channel to
/// its service. Every callback runs on the worker's thread.
final class Connection: SSHServerSessionDelegate {
    /// sshd's MaxAuthTries default: failed attempts before the connection is dropped.
    static let maximumAuthAttempts = 6

    let id: UInt64
    let session: SSHSession
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
    private var nextChannelID: UInt64 = 0

    init(id: UInt64, session: SSHSession, worker: Worker, client: Endpoint, local: Endpoint, loginGraceSeconds: Int, logger: Logger) {
        self.id = id
        self.session = session
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
        default:
            // Global requests (keepalive included: a failure reply is an answer),
            // x11/agent/pty requests, other auth methods: libssh's default refusal.
            return false
        }
    }

    private func admitsAnotherChannel() -> Bool {
        channels.count < worker.config.snapshot.limits.maxChannelsPerConnection
    }

    private func makeChannelID() -> UInt64 {
        nextChannelID += 1
        return (id << 20) | nextChannelID
    }

    private func openDirect(_ message: borrowing SSHMessage, caller: Caller, requested: String, port: UInt32) -> Bool {
        let config = worker.config.snapshot
        let decision = AccessPolicy.decide(caller: caller, form: .directTCPIP, requested: requested, requestedPort: port,
                                           services: Self.lookup(config), statusAllow: config.statusAllow)
        switch decision {
        case .open(let name):
            guard let service = config.services[name] else { return refuse(requested, form: .directTCPIP, why: "unknown service") }
            let backend: BackendConnection
            do {
                backend = try BackendConnector.connect(service.backend, environment: environment(for: service, caller: caller))
            } catch {
                return refuse(requested, form: .directTCPIP, why: "backend unavailable: \(error)")
            }
            guard let channel = message.acceptChannel() else { return false }
            let pump = ServiceChannel(id: makeChannelID(), channel: channel, connection: self, isSessionChannel: false)
            channel.install(delegate: pump)
            channels[ObjectIdentifier(pump)] = pump
            pump.attach(backend, form: .directTCPIP, service: name.value, preamble: preamble(for: service, caller: caller, channelID: pump.id))
            worker.channelStarted(pump)
            return true
        case .help, .status:
            guard let channel = message.acceptChannel() else { return false }
            let pump = ServiceChannel(id: makeChannelID(), channel: channel, connection: self, isSessionChannel: false)
            channel.install(delegate: pump)
            channels[ObjectIdentifier(pump)] = pump
            let text = decision == .help ? helpText(caller: caller, config: config) : worker.statusText()
            pump.respond(form: .directTCPIP, service: decision == .help ? "help" : "status", stdout: text, exitStatus: 0)
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
                                           services: Self.lookup(config), statusAllow: config.statusAllow)
        let shownName = requested.map { ServiceName.printable($0) } ?? "-"
        switch decision {
        case .open(let name):
            guard let service = config.services[name] else {
                _ = refuse(shownName, form: form, why: "unknown service")
                pump.respond(form: form, service: shownName, stdout: "", stderr: "fived: \(AccessPolicy.refusalText)\n", exitStatus: 1)
                return true
            }
            do {
                let backend = try BackendConnector.connect(service.backend, environment: environment(for: service, caller: caller))
                pump.attach(backend, form: form, service: name.value, preamble: preamble(for: service, caller: caller, channelID: pump.id))
                worker.channelStarted(pump)
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
            pump.respond(form: form, service: "status", stdout: worker.statusText(), exitStatus: 0)
            return true
        case .refused(let refusal):
            _ = refuse(shownName, form: form, why: "\(refusal)")
            pump.respond(form: form, service: shownName, stdout: "", stderr: "fived: \(AccessPolicy.refusalText)\n", exitStatus: 1)
            return true
        }
    }

    private static func lookup(_ config: Configuration) -> (ServiceName) -> ServiceAccess? {
        { name in config.services[name].map { ServiceAccess(name: $0.name, allow: $0.allow) } }
    }

    private func helpText(caller: Caller, config: Configuration) -> String {
        let names = AccessPolicy.visibleServices(caller: caller, services: config.sortedServices.map { ServiceAccess(name: $0.name, allow: $0.allow) },
                                                 statusAllow: config.statusAllow)
        return names.map { $0.value + "\n" }.joined()
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
        guard let source = IPAddress(client.address), let destination = IPAddress(local.address) else { return [] }
        let header = ProxyV2Header(
            sourceAddress: source, sourcePort: client.port, destinationAddress: destination, destinationPort: local.port,
            uniqueID: Array(String(channelID, radix: 16).utf8), service: service.name, user: caller.user,
            keyFingerprint: caller.key.blob.fingerprint, keyComment: caller.key.comment)
        do {
            return try header.encoded()
        } catch {
            logger.warning("PROXY header not sent", metadata: ["service": "\(service.name)", "reason": "\(error)"])
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

    func channelMetadata(_ pump: ServiceChannel) -> Logger.Metadata {
        [
            "user": "\(caller?.user ?? "-")",
            "fingerprint": "\(caller?.key.blob.fingerprint ?? "-")",
            "client": "\(client)",
            "service": "\(pump.service)",
            "form": "\(pump.form?.rawValue ?? "session")",
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

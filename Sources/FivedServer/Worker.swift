import CSystem
import FivedCore
import LibSSH
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One event-loop thread: an epoll set (`Poller`) over its sessions, their
/// backends and exec children. Each session has a private `SSHEvent` that libssh
/// polls; the worker runs it when epoll says its socket is ready (see Poller for
/// why sessions do not share one). A session lives on one worker for life and is
/// touched by no other thread; other threads reach a worker only through `inbox`
/// and its eventfd.
final class Worker: @unchecked Sendable {
    enum Command {
        case adopt(SSHSession, client: Endpoint, local: Endpoint)
        case adoptTCPMUX(fd: Int32, client: Endpoint, local: Endpoint)
        case openForwarded(connectionID: UInt64, name: ServiceName, address: String, port: UInt32, originator: Endpoint, fd: Int32)
        /// Runs on this worker's thread (the status service gathers through it).
        case perform(@Sendable (Worker) -> Void)
        case shutdown
    }

    let index: Int
    let config: ConfigStore
    let startups: StartupLimiter
    let authorizedKeys: AuthorizedKeysStore
    let publications: Publications
    let tcpmuxSources: StartupLimiter
    let logger: Logger
    private let inbox = Mutex<[Command]>([])
    private let wakeFD: Int32
    private var poller: Poller!
    private var thread: pthread_t?
    private let liveConnections = Atomic<Int>(0)

    private(set) var connections: [ObjectIdentifier: Connection] = [:]
    private var dirty: [ObjectIdentifier: ServiceChannel] = [:]
    private var watchedOnSSH: [ObjectIdentifier: ServiceChannel] = [:]
    private var closingConnections: [Connection] = []
    private var finishedChannels: [ServiceChannel] = []
    private var orphans: [(backend: BackendConnection, killAt: Int64, token: UInt64)] = []
    private var touched: [ObjectIdentifier: Connection] = [:]
    private var connectionsByID: [UInt64: Connection] = [:]
    private var pendingForwards: [PendingForward] = []
    /// A forwarded-tcpip open waiting for the publisher's client to answer.
    private typealias PendingForward = (connection: Connection, channel: SSHChannel, backend: BackendConnection, name: ServiceName, originator: Endpoint, deadline: Int64)
    /// How long a publisher's client may take to answer a forwarded-tcpip open.
    static let forwardOpenTimeoutMilliseconds: Int64 = 10_000
    private(set) var tcpmux: [ObjectIdentifier: TCPMUXConnection] = [:]
    private var stopping = false
    private var nextConnectionID: UInt64
    /// Every worker, for the status service to ask (Worker+Status.swift).
    let peers: WorkerDirectory

    init(index: Int, config: ConfigStore, startups: StartupLimiter, authorizedKeys: AuthorizedKeysStore,
         publications: Publications, tcpmuxSources: StartupLimiter, logger: Logger,
         peers: WorkerDirectory) throws {
        self.index = index
        self.publications = publications
        self.tcpmuxSources = tcpmuxSources
        self.config = config
        self.startups = startups
        self.authorizedKeys = authorizedKeys
        self.logger = logger
        self.peers = peers
        self.nextConnectionID = UInt64(index) << 40
        wakeFD = fived_eventfd()
        guard wakeFD >= 0 else { throw SystemError("eventfd", errno: errno) }
    }

    /// Connections on this worker (read from other threads).
    var connectionCount: Int { liveConnections.load(ordering: .relaxed) }

    // MARK: Other threads

    /// Hands a new session to this worker.
    func adopt(_ session: SSHSession, client: Endpoint, local: Endpoint) {
        send(.adopt(session, client: client, local: local))
    }

    /// Hands a plain TCPMUX connection to this worker.
    func adoptTCPMUX(fd: Int32, client: Endpoint, local: Endpoint) {
        send(.adoptTCPMUX(fd: fd, client: client, local: local))
    }

    /// Asks this worker to open a forwarded-tcpip channel on one of its
    /// connections (a publisher) and join it to `fd`. The worker owns `fd` from here.
    func openForwarded(connectionID: UInt64, name: ServiceName, address: String, port: UInt32, originator: Endpoint, fd: Int32) {
        send(.openForwarded(connectionID: connectionID, name: name, address: address, port: port, originator: originator, fd: fd))
    }

    /// Runs `body` on this worker's thread at its next loop pass.
    func perform(_ body: @escaping @Sendable (Worker) -> Void) {
        send(.perform(body))
    }

    /// Asks the worker to close everything and stop.
    func shutdown() {
        send(.shutdown)
    }

    private func send(_ command: Command) {
        inbox.withLock { $0.append(command) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Starts the thread.
    func start() throws {
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let worker = Unmanaged<Worker>.fromOpaque(arg!).takeRetainedValue()
            worker.run()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw SystemError("pthread_create", errno: rc)
        }
        thread = tid
    }

    /// Waits for the thread to end.
    func join() {
        if let thread { pthread_join(thread, nil) }
    }

    // MARK: The loop

    private func run() {
        do {
            poller = try Poller()
        } catch {
            logger.critical("worker could not start", metadata: ["worker": "\(index)", "reason": "\(error)"])
            return
        }
        poller.add(wakeFD, events: Poller.readable, target: .wake)
        var lastTick = MonotonicClock.now
        while true {
            let timeout: Int32 = dirty.isEmpty ? 1000 : 0
            poller.wait(timeoutMilliseconds: timeout) { target, events in
                switch target {
                case .wake:
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                case .session(let connection):
                    service(connection)
                case .backend(let pump):
                    pump.backendEvent(events)
                case .stderr(let pump):
                    pump.stderrEvent(events)
                case .process(let pump):
                    pump.processExitEvent(events)
                case .orphan:
                    reapOrphans(force: false)
                case .tcpmuxClient(let t):
                    if t.phase == .readingName { t.readName { decideTCPMUX($0, t) } } else { t.relay() }
                    settle(t)
                case .tcpmuxBackend(let t):
                    t.relay()
                    settle(t)
                case .tcpmuxStderr(let t):
                    if t.drainStderr(logger: logger) {
                        poller.remove(t.stderrRegistration)
                        t.stderrRegistration = 0
                        t.backend?.closeStderr()
                    }
                }
            }
            handleInbox()
            advancePendingForwards()
            if stopping && connections.isEmpty && orphans.isEmpty && tcpmux.isEmpty { break }
            runDirty()
            recheckWaitingChannels()
            reapFinished()
            let now = MonotonicClock.now
            if now - lastTick >= 250 {
                lastTick = now
                tick(now: now)
            }
            settleTouched()
            reapFinished()
        }
        Sys.close(wakeFD)
    }

    /// Lets libssh process what arrived on a session's socket: a bounded number
    /// of passes (libssh reads 4 KiB per pass), each polling only this session.
    /// Client data that channels held back to send in bigger pieces is released
    /// when the socket runs dry, and after one more pass at the latest.
    private func service(_ connection: Connection) {
        touched[ObjectIdentifier(connection)] = connection
        connection.isReading = true
        var drained = false
        for _ in 0..<Self.readPasses {
            if connection.event.poll(timeoutMilliseconds: 0) != 0 { drained = true; break }
        }
        connection.isReading = false
        // Stopped by the bound: more is certain only if the kernel still holds
        // bytes (then the level-triggered socket wakes this worker again).
        if !drained { drained = Sys.bytesReadable(connection.socketFD) <= 0 }
        for pump in connection.heldDeliveries.endPass(inputDrained: drained) where !pump.finished { pump.releaseHeldData() }
    }

    /// libssh passes per wake-up of one session: 4 KiB each, so up to 512 KiB
    /// (about half a millisecond) before the other sessions on this worker get
    /// their turn; enough for one coalesced send (ServiceChannel.coalesceBytes).
    static let readPasses = 128

    /// After a pass: close connections whose transport ended, and keep each
    /// session's epoll interest in line with libssh's (POLLOUT while output is queued).
    private func settleTouched() {
        guard !touched.isEmpty else { return }
        let batch = touched
        touched.removeAll(keepingCapacity: true)
        for c in batch.values where connections[ObjectIdentifier(c)] != nil {
            if !c.closing && !c.session.isConnected {
                c.close(reason: c.isAuthenticated ? "client disconnected" : "disconnected before authentication")
                continue
            }
            let wanted = Poller.readable | (c.session.flushOutput() ? 0 : Poller.writable)
            if wanted != c.registeredEvents {
                poller.modify(c.pollerToken, events: wanted)
                c.registeredEvents = wanted
            }
        }
    }

    private func handleInbox() {
        let commands = inbox.withLock { q -> [Command] in
            defer { q.removeAll() }
            return q
        }
        for command in commands {
            switch command {
            case .adopt(let session, let client, let local):
                adoptNow(session, client: client, local: local)
            case .adoptTCPMUX(let fd, let client, let local):
                adoptTCPMUX(fd, client: client, local: local)
            case .openForwarded(let connectionID, let name, let address, let port, let originator, let fd):
                startForwarded(connectionID: connectionID, name: name, address: address, port: port, originator: originator, fd: fd)
            case .perform(let body):
                body(self)
            case .shutdown:
                stopping = true
                for c in connections.values { c.close(reason: "fived stopping") }
                for t in tcpmux.values { t.finish("fived stopping"); settle(t) }
                for i in orphans.indices { orphans[i].killAt = 0 }
            }
        }
    }

    private func adoptNow(_ session: SSHSession, client: Endpoint, local: Endpoint) {
        nextConnectionID += 1
        let snapshot = config.snapshot
        let connection: Connection
        do {
            connection = try Connection(id: nextConnectionID, session: session, worker: self, client: client, local: local,
                                        loginGraceSeconds: snapshot.limits.loginGraceSeconds, logger: logger)
            try session.prepareServer(delegate: connection)
            // libssh requires one key-exchange step before the session may join an event.
            _ = try session.handleKeyExchange()
            try connection.event.add(session)
        } catch {
            logger.info("connection failed", metadata: ["client": "\(client)", "reason": "\(error)"])
            startups.release(source: client.address)
            session.disconnect()
            return
        }
        connection.pollerToken = poller.add(connection.socketFD, events: Poller.readable, target: .session(connection))
        connection.registeredEvents = Poller.readable
        if stopping { connection.close(reason: "fived stopping") }
        connections[ObjectIdentifier(connection)] = connection
        connectionsByID[connection.id] = connection
        touched[ObjectIdentifier(connection)] = connection
        liveConnections.store(connections.count, ordering: .relaxed)
        logger.debug("connection accepted", metadata: ["client": "\(client)", "worker": "\(index)"])
    }

    /// Runs the pumps of channels that had events, until quiet or a bound of rounds.
    private func runDirty() {
        var rounds = 0
        while !dirty.isEmpty && rounds < 4 {
            rounds += 1
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for pump in batch.values {
                if pump.pump() { dirty[ObjectIdentifier(pump)] = pump }
                touched[ObjectIdentifier(pump.connection)] = pump.connection
                reconcile(pump)
            }
        }
    }

    /// libssh 0.10.6 does not say when a client reopens its window: re-check
    /// the channels that were waiting on it after every poll.
    private func recheckWaitingChannels() {
        guard !watchedOnSSH.isEmpty else { return }
        for pump in watchedOnSSH.values where !pump.finished {
            if pump.channel.windowSize > 0 && pump.channel.session.flushOutput() {
                if pump.pump() { dirty[ObjectIdentifier(pump)] = pump }
                touched[ObjectIdentifier(pump.connection)] = pump.connection
                reconcile(pump)
            }
        }
    }

    func markDirty(_ pump: ServiceChannel) {
        dirty[ObjectIdentifier(pump)] = pump
    }

    func markClosing(_ connection: Connection) {
        closingConnections.append(connection)
    }

    func channelFinished(_ pump: ServiceChannel) {
        finishedChannels.append(pump)
    }

    /// Brings the event's registrations for a channel in line with what it wants.
    /// Registrations are removed by the descriptor number they were made with, and
    /// a descriptor is closed only after it is unregistered.
    private func reconcile(_ pump: ServiceChannel) {
        guard !pump.finished, let backend = pump.backend else { return }
        poller.update(&pump.registeredMain, fd: backend.fd, events: pump.wantedMainEvents, target: .backend(pump))
        poller.update(&pump.registeredStderr, fd: backend.stderrFD, events: pump.wantedStderrEvents, target: .stderr(pump))
        if pump.stderrFinished, pump.registeredStderr.token == 0, backend.stderrFD >= 0 {
            backend.closeStderr()
        }
        let pid = pump.wantsProcessEvents
        if pid != (pump.registeredPid != 0) {
            if pump.registeredPid != 0 {
                poller.remove(pump.registeredPid)
                pump.registeredPid = 0
            } else {
                pump.registeredPid = poller.add(backend.pidFD, events: Poller.readable, target: .process(pump))
            }
        }
        if pump.waitsOnSSH {
            watchedOnSSH[ObjectIdentifier(pump)] = pump
        } else {
            watchedOnSSH.removeValue(forKey: ObjectIdentifier(pump))
        }
    }

    /// Tears down finished channels: unregisters descriptors, closes them, and
    /// reaps or terminates exec children.
    private func reapFinished() {
        while !finishedChannels.isEmpty {
            let batch = finishedChannels
            finishedChannels.removeAll()
            for pump in batch { teardown(pump) }
        }
        while !closingConnections.isEmpty {
            let batch = closingConnections
            closingConnections.removeAll()
            for c in batch { teardown(c) }
        }
    }

    private func teardown(_ pump: ServiceChannel) {
        let id = ObjectIdentifier(pump)
        dirty.removeValue(forKey: id)
        watchedOnSSH.removeValue(forKey: id)
        poller.remove(pump.registeredMain.token)
        poller.remove(pump.registeredStderr.token)
        poller.remove(pump.registeredPid)
        pump.registeredMain = (0, 0)
        pump.registeredStderr = (0, 0)
        pump.registeredPid = 0
        if let backend = pump.takeBackend() { retire(backend) }
        pump.connection.forget(pump)
        pump.channel.release()
    }

    /// Closes a backend's descriptors; a child still running gets SIGHUP (its
    /// stream is closed, so it sees EOF/EPIPE anyway) and SIGKILL 2 s later.
    private func retire(_ backend: BackendConnection) {
        backend.closeStream()
        backend.closeStderr()
        if backend.childRunning, backend.reap() == nil {
            backend.signalChild(SIGHUP)
            let token = poller.add(backend.pidFD, events: Poller.readable, target: .orphan(backend))
            orphans.append((backend, MonotonicClock.now + 2000, token))
        } else {
            backend.closeProcessDescriptor()
        }
    }

    private func reapOrphans(force: Bool) {
        let now = MonotonicClock.now
        orphans.removeAll { entry in
            if entry.backend.reap() != nil {
                poller.remove(entry.token)
                entry.backend.closeProcessDescriptor()
                return true
            }
            if force || now >= entry.killAt {
                entry.backend.signalChild(SIGKILL)
            }
            return false
        }
    }

    private func teardown(_ connection: Connection) {
        let key = ObjectIdentifier(connection)
        guard connections[key] != nil else { return }
        for pump in connection.channels.values {
            pump.finish(reason: connection.closeReason)
        }
        // Channels were queued by finish(); tear them down before the session goes.
        let batch = finishedChannels
        finishedChannels.removeAll()
        for pump in batch { teardown(pump) }
        for name in publications.releaseAll(connectionID: connection.id) {
            logger.info("unpublished", metadata: ["user": "\(connection.caller?.user ?? "-")", "client": "\(connection.client)", "service": "\(name)", "reason": "\(connection.closeReason)"])
        }
        pendingForwards.removeAll { entry in
            guard entry.connection === connection else { return false }
            entry.channel.release()
            retire(entry.backend)
            return true
        }
        connectionsByID.removeValue(forKey: connection.id)
        connection.releaseStartupSlot()
        poller.remove(connection.pollerToken)
        connection.event.remove(connection.session)
        connection.session.disconnect()
        connections.removeValue(forKey: key)
        liveConnections.store(connections.count, ordering: .relaxed)
        logger.debug("connection closed", metadata: [
            "client": "\(connection.client)", "user": "\(connection.caller?.user ?? "-")", "reason": "\(connection.closeReason)",
        ])
    }

    /// Timers: the login grace time and the kill deadline of orphaned children.
    private func tick(now: Int64) {
        for c in connections.values where !c.isAuthenticated && !c.closing && now >= c.loginDeadline {
            logger.info("login grace time exceeded", metadata: ["client": "\(c.client)"])
            c.close(reason: "login grace time exceeded")
        }
        if !orphans.isEmpty { reapOrphans(force: false) }
        for c in connections.values {
            for pump in c.channels.values {
                if pump.isDrainingAfterClose && now >= pump.closeDrainDeadline { markDirty(pump) }
                pump.trimIdleBuffers()
            }
        }
        for t in tcpmux.values where t.phase == .readingName && now >= t.deadline {
            t.expire()
            settle(t)
        }
    }

    // MARK: Publishing: channels toward a publisher

    private func startForwarded(connectionID: UInt64, name: ServiceName, address: String, port: UInt32, originator: Endpoint, fd: Int32) {
        let backend = BackendConnection(fd: fd)
        guard let connection = connectionsByID[connectionID], !connection.closing,
              let (channel, progress) = SSHChannel.openReverseForward(
                on: connection.session, address: address, port: port, originator: originator.address, originatorPort: UInt32(originator.port))
        else {
            retire(backend)
            return
        }
        touched[ObjectIdentifier(connection)] = connection
        pendingForwards.append((connection, channel, backend, name, originator, MonotonicClock.now + Self.forwardOpenTimeoutMilliseconds))
        if progress != .pending { advancePendingForwards() }
    }

    /// Retries forwarded-tcpip opens until the publisher's client answers.
    private func advancePendingForwards() {
        guard !pendingForwards.isEmpty else { return }
        var still: [PendingForward] = []
        let now = MonotonicClock.now
        for entry in pendingForwards {
            var progress = entry.channel.continueReverseForward()
            if progress == .pending && now >= entry.deadline { progress = .failed }
            switch progress {
            case .pending:
                still.append(entry)
            case .failed:
                logger.info("channel refused", metadata: [
                    "user": "\(entry.connection.caller?.user ?? "-")", "client": "\(entry.connection.client)",
                    "service": "\(entry.name)", "form": "forwarded-tcpip", "reason": "the publisher refused the channel or did not answer within 10 s",
                ])
                entry.channel.release()
                retire(entry.backend)
            case .open:
                let pump = ServiceChannel(id: entry.connection.nextChannelID(), channel: entry.channel, connection: entry.connection, isSessionChannel: false)
                entry.channel.install(delegate: pump)
                entry.connection.adopt(pump)
                pump.attach(entry.backend, form: .directTCPIP, service: entry.name.value, label: "forwarded-tcpip")
                touched[ObjectIdentifier(entry.connection)] = entry.connection
            }
        }
        pendingForwards = still
    }

    // MARK: TCPMUX

    private func adoptTCPMUX(_ fd: Int32, client: Endpoint, local: Endpoint) {
        let t = TCPMUXConnection(fd: fd, client: client, local: local)
        tcpmux[ObjectIdentifier(t)] = t
        if stopping { t.finish("fived stopping") }
        settle(t)
    }

    /// RFC 1078: HELP lists the offered names; a name offered here gets `+` and
    /// its service; anything else `-` with a reason.
    private func decideTCPMUX(_ request: TCPMUXRequest, _ t: TCPMUXConnection) -> (reply: String, backend: BackendConnection?, service: String) {
        let config = config.snapshot
        switch request {
        case .help:
            let names = config.sortedServices.filter(\.tcpmux).map { $0.name.value + "\r\n" }.joined()
            return (names, nil, "help")
        case .invalid(let why):
            return ("-\(why)\r\n", nil, "-")
        case .service(let name):
            guard let service = config.services[name], service.tcpmux else {
                return ("-service not available\r\n", nil, name.value)
            }
            let environment = [
                "PATH=/usr/local/bin:/usr/bin:/bin", "FIVED_SERVICE=\(name.value)",
                "FIVED_CLIENT_ADDR=\(t.client.address)", "FIVED_CLIENT_PORT=\(t.client.port)",
                "PROTO=TCP", "TCPREMOTEIP=\(t.client.address)", "TCPREMOTEPORT=\(t.client.port)",
                "TCPLOCALIP=\(t.local.address)", "TCPLOCALPORT=\(t.local.port)",
            ]
            do {
                let backend = try BackendConnector.connect(service.backend, environment: environment)
                if service.proxyProtocol, case .exec = service.backend {} else if service.proxyProtocol,
                   let source = IPAddress(t.client.address), let destination = IPAddress(t.local.address),
                   let header = try? ProxyV2Header(
                       sourceAddress: source, sourcePort: t.client.port, destinationAddress: destination, destinationPort: t.local.port,
                       tlvs: [.init(type: ProxyV2Header.serviceType, value: Array(name.value.utf8))]).encoded() {
                    _ = header.withUnsafeBytes { Glibc.send(backend.fd, $0.baseAddress, header.count, Int32(MSG_NOSIGNAL)) }
                }
                return ("+\r\n", backend, name.value)
            } catch {
                logger.info("tcpmux backend unavailable", metadata: ["client": "\(t.client)", "service": "\(name)", "reason": "\(error)"])
                return ("-service not available\r\n", nil, name.value)
            }
        }
    }

    /// Keeps a TCPMUX connection's registrations in line; tears it down when finished.
    private func settle(_ t: TCPMUXConnection) {
        if t.phase == .finished {
            poller.remove(t.clientRegistration.token)
            poller.remove(t.backendRegistration.token)
            poller.remove(t.stderrRegistration)
            t.clientRegistration = (0, 0)
            t.backendRegistration = (0, 0)
            t.stderrRegistration = 0
            if let backend = t.takeBackend() { retire(backend) }
            Sys.close(t.clientFD)
            guard tcpmux.removeValue(forKey: ObjectIdentifier(t)) != nil else { return }
            tcpmuxSources.release(source: t.client.address)
            logger.info("tcpmux closed", metadata: [
                "client": "\(t.client)", "service": "\(t.service)", "form": "tcpmux", "bytes_in": "\(t.bytesIn)",
                "bytes_out": "\(t.bytesOut)", "duration_ms": "\(MonotonicClock.now - t.startedAt)", "reason": "\(t.closeReason)",
            ])
            return
        }
        poller.update(&t.clientRegistration, fd: t.clientFD, events: t.wantedClientEvents, target: .tcpmuxClient(t))
        guard let backend = t.backend else { return }
        poller.update(&t.backendRegistration, fd: backend.fd, events: t.wantedBackendEvents, target: .tcpmuxBackend(t))
        if t.stderrRegistration == 0, backend.stderrFD >= 0 {
            t.stderrRegistration = poller.add(backend.stderrFD, events: Poller.readable, target: .tcpmuxStderr(t))
        }
    }
}

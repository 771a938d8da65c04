import FivedCore
import FivedRuntime
import FivedSystem
import LibSSH
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One event-loop thread: an epoll set over its sessions, their backends and
/// exec children. Each session has a private `SSHEvent` that libssh polls; the
/// worker runs it when epoll says its socket is ready.
///
/// Why not libssh's shared `ssh_event`: every libssh call that flushes polls the
/// session's whole poll context, and in a context shared by many sessions another
/// session's EOF makes `ssh_handle_packets` mark the *calling* session as failed
/// (session.c:686-689), dropping healthy connections under load. So each session
/// keeps a private `ssh_event` holding only its own socket, and this epoll set says
/// which of them to run: O(ready) per wake-up instead of a poll() over everything.
///
/// A session lives on one worker for life and is touched by no other thread;
/// other threads reach a worker only through `inbox` and its eventfd. Protocol
/// jobs beyond the loop are in Worker+Publishing, Worker+TCPMUX and Worker+Status.
final class Worker: @unchecked Sendable {
    /// What a poller registration is for.
    enum Target {
        case wake
        case session(Connection)
        case backend(ServiceChannel)
        case stderr(ServiceChannel)
        case connecting(any AwaitsBackend)
        case lingering(LingeringClose)
        case tcpmuxClient(TCPMUXConnection)
        case tcpmuxBackend(TCPMUXConnection)
        case tcpmuxStderr(TCPMUXConnection)
        /// A connection to a peer node while it dials (Worker+Fleet).
        case peerLink(PeerLink)
    }

    enum Command {
        case adopt(SSHSession, client: Endpoint, local: Endpoint, slot: StartupSlot)
        case adoptTCPMUX(Descriptor, client: Endpoint, local: Endpoint, slot: StartupSlot)
        case openForwarded(ForwardRequest, fd: Int32)
        /// Closes a socket gracefully after a last reply (see LingeringClose).
        case linger(Descriptor)
        /// Runs on this worker's thread (the status service gathers through it).
        case perform(@Sendable (Worker) -> Void)
        case shutdown
    }

    let index: Int
    let config: ConfigStore
    let startups: StartupLimiter
    let authorizedKeys: AuthorizedKeysStore
    let certificateTrust: CertificateTrust
    /// The privileged process that starts exec services (Privilege/).
    let spawner: SpawnerLink
    let publications: Publications
    let keyUsage: KeyUsage
    let tcpmuxSources: StartupLimiter
    let logger: Logger
    private let inbox = Mutex<[Command]>([])
    private let wake: Descriptor
    var poller: Poller<Target>!
    private var thread: pthread_t?
    private let liveConnections = Atomic<Int>(0)

    private(set) var connections: [ObjectIdentifier: Connection] = [:]
    private var dirty: [ObjectIdentifier: ServiceChannel] = [:]
    private var watchedOnSSH: [ObjectIdentifier: ServiceChannel] = [:]
    private var closingConnections: [Connection] = []
    private var finishedChannels: [ServiceChannel] = []
    /// Exec services being started by the spawner, by their pending start.
    var awaitingProcesses: [ObjectIdentifier: any AwaitsBackend] = [:]
    private var connecting: [ObjectIdentifier: any AwaitsBackend] = [:]
    /// Opens waiting for a publisher's answer, by token.
    private var awaitingPublishers: [UInt64: any AwaitsBackend] = [:]
    private var lingering: [ObjectIdentifier: LingeringClose] = [:]
    var touched: [ObjectIdentifier: Connection] = [:]
    var connectionsByID: [UInt64: Connection] = [:]
    var pendingForwards: [PendingForward] = []
    var tcpmux: [ObjectIdentifier: TCPMUXConnection] = [:]
    private(set) var stopping = false
    private var nextConnectionID: UInt64
    private var nextToken: UInt64 = 0
    /// The connection whose session libssh was last called for (for its log
    /// messages): set before every call into a session.
    private var serving: Connection?
    /// Every worker, for the status service to ask (Worker+Status.swift).
    let peers: WorkerDirectory
    /// This node's fleet, when `[cluster]` is configured (set before the thread starts).
    var fleet: Fleet?
    /// This worker's connections to peer nodes, by node (Worker+Fleet).
    var peerLinks: [NodeName: PeerLink] = [:]

    init(
        index: Int, config: ConfigStore, startups: StartupLimiter, authorizedKeys: AuthorizedKeysStore,
        certificateTrust: CertificateTrust, spawner: SpawnerLink, publications: Publications, keyUsage: KeyUsage, tcpmuxSources: StartupLimiter, logger: Logger,
        peers: WorkerDirectory
    ) throws(SystemError) {
        self.index = index
        self.publications = publications
        self.keyUsage = keyUsage
        self.tcpmuxSources = tcpmuxSources
        self.config = config
        self.startups = startups
        self.authorizedKeys = authorizedKeys
        self.certificateTrust = certificateTrust
        self.spawner = spawner
        self.logger = logger
        self.peers = peers
        self.nextConnectionID = UInt64(index) << 40
        wake = try Syscall.eventFD()
    }

    /// Connections on this worker (read from other threads).
    var connectionCount: Int { liveConnections.load(ordering: .relaxed) }

    // MARK: Other threads

    /// Hands a new session to this worker.
    func adopt(_ session: SSHSession, client: Endpoint, local: Endpoint, slot: StartupSlot) {
        send(.adopt(session, client: client, local: local, slot: slot))
    }

    /// Hands a plain TCPMUX connection to this worker.
    func adoptTCPMUX(_ fd: Descriptor, client: Endpoint, local: Endpoint, slot: StartupSlot) {
        send(.adoptTCPMUX(fd, client: client, local: local, slot: slot))
    }

    /// Asks this worker to open a forwarded-tcpip channel on one of its
    /// connections (a publisher) and join it to `fd`. The worker owns `fd` from here.
    func openForwarded(_ request: ForwardRequest, fd: Int32) {
        send(.openForwarded(request, fd: fd))
    }

    /// Closes `socket` gracefully (its last reply written) on this worker.
    func lingerAfterReply(_ socket: Descriptor) {
        send(.linger(socket))
    }

    /// Runs `body` on this worker's thread at its next loop pass.
    func perform(_ body: @escaping @Sendable (Worker) -> Void) {
        send(.perform(body))
    }

    /// Hands `command` to this worker from any thread.
    func post(_ command: Command) {
        send(command)
    }

    /// Asks the worker to close everything and stop.
    func shutdown() {
        send(.shutdown)
    }

    private func send(_ command: Command) {
        inbox.withLock { $0.append(command) }
        Syscall.signalEvent(wake.rawValue)
    }

    /// Starts the thread.
    func start() throws(SystemError) {
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        let rc = pthread_create(
            &tid, nil,
            { arg in
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
            poller = try Poller<Target>()
        } catch {
            logger.critical("worker could not start", metadata: ["worker": "\(index)", "reason": "\(error)"])
            return
        }
        poller.add(wake.rawValue, events: PollEvents.readable, target: .wake)
        // libssh's log is per thread: its warnings and protocol notes (and
        // everything, at trace level) come here, attributed to the connection
        // being served. Protocol level (2) is needed for the one way libssh tells
        // of `no-more-sessions@openssh.com`; it logs a few lines per window
        // adjust, not per packet.
        LibSSH.routeLog(verbosity: config.snapshot.logLevel == .trace ? 3 : 2, to: self)
        var lastTick = MonotonicClock.now
        while true {
            let timeout: Int32 = dirty.isEmpty && !waitingChannelsCanSend() ? 1000 : 0
            poller.wait(timeoutMilliseconds: timeout) { target, events in
                switch target {
                case .wake:
                    Syscall.clearEvent(wake.rawValue)
                case .session(let connection):
                    service(connection, events)
                case .backend(let channel):
                    channel.backendEvent(events)
                case .stderr(let channel):
                    channel.stderrEvent(events)
                case .connecting(let waiter):
                    advanceConnect(waiter, now: MonotonicClock.now)
                case .lingering(let socket):
                    if socket.drain(now: MonotonicClock.now) { endLingering(socket) }
                case .tcpmuxClient(let t):
                    tcpmuxClientEvent(t, events)
                case .tcpmuxBackend(let t):
                    t.backendEvent(events)
                    t.pump()
                    settle(t)
                case .tcpmuxStderr(let t):
                    t.stderrEvent(events)
                    t.pump()
                    settle(t)
                case .peerLink(let link):
                    peerLinkEvent(link)
                }
            }
            handleInbox()
            advancePendingForwards()
            advancePeerLinks()
            if stopping && connections.isEmpty && tcpmux.isEmpty && lingering.isEmpty { break }
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
            // libssh reads the socket inside our own calls too (a flush, a channel
            // write): a window adjust it took there raises no epoll event, so look
            // at the waiting channels once more before blocking (with a 24 KiB
            // window, as Dropbear's client has, each of those waits was a second).
            // settleTouched's own flush can take an adjust too: look again (bounded)
            // while a waiting channel has both window and output.
            for _ in 0..<8 {
                let pumped = recheckWaitingChannels()
                settleTouched()
                reapFinished()
                if !pumped && !waitingChannelsCanSend() { break }
            }
        }
        wake.close()
    }

    /// Lets libssh process what arrived on a session's socket. An authenticated
    /// session's input is read by fived in pieces of up to 256 KiB and handed to
    /// libssh's packet reader (`SessionInputFeed`, `socketInput`); otherwise, and
    /// for anything but plain readability, libssh polls and reads for itself, a
    /// bounded number of passes (4 KiB each). Client data that channels held
    /// back to send in bigger pieces is released when the socket runs dry, and
    /// after one more wake-up at the latest.
    private func service(_ connection: Connection, _ events: UInt32) {
        serving = connection
        touched[ObjectIdentifier(connection)] = connection
        heard(from: connection, at: MonotonicClock.now)
        connection.isReading = true
        var drained: Bool?
        let receivedBefore = connection.session.bytesReceived
        if connection.inputIsBulk && connection.isAuthenticated && !connection.closing
            && events & ~PollEvents.readable == 0
        {
            drained = feed(connection)
        }
        if drained == nil {
            drained = false
            for _ in 0..<Self.readPasses {
                if connection.event.poll(timeoutMilliseconds: 0) != 0 { drained = true; break }
            }
            // Stopped by the bound: more is certain only if the kernel still holds
            // bytes (then the level-triggered socket wakes this worker again).
            if drained == false { drained = Socket.bytesReadable(connection.socketFD) <= 0 }
        }
        connection.isReading = false
        connection.inputIsBulk = connection.session.bytesReceived - receivedBefore >= Self.bulkInputBytes
        for channel in connection.heldDeliveries.endPass(inputDrained: drained ?? true) where !channel.finished {
            channel.releaseHeldData()
        }
        connection.drainMessages()
        if let error = connection.session.channelProtocolError {
            connection.protocolViolation("a message for a channel that is closed or never existed (\(error))")
        }
    }

    /// Input of any kind proves the client alive (sshd resets its count the same way).
    private func heard(from connection: Connection, at now: Int64) {
        connection.lastInput = now
        connection.packetsSeen = connection.session.packetsReceived
        connection.probesUnanswered = 0
        if !connection.livenessProbes.isEmpty {
            let answered = connection.livenessProbes.filter { $0.since < now }
            connection.livenessProbes.removeAll { $0.since < now }
            for probe in answered { probe.report(true) }
        }
    }

    /// libssh passes per wake-up of one session when libssh reads for itself:
    /// 4 KiB each, so up to 512 KiB (about half a millisecond) before the other
    /// sessions on this worker get their turn; enough for one coalesced send
    /// (ServiceChannel.coalesceBytes).
    static let readPasses = 128

    /// Payload bytes in one wake-up that make the next wake-up of that session
    /// read for libssh (`feed`). A session whose input is small (a download's
    /// window adjusts, keepalive replies, interactive keystrokes) keeps
    /// libssh's own reads: it gains nothing from larger reads, and in perf stat
    /// runs of downloads on this busy machine, feeding them showed 2-7x the
    /// wake-ups of the same runs without (noisy, but no reason to take the risk).
    static let bulkInputBytes: UInt64 = 8 * 1024

    /// Bytes read from one session per wake-up when fived reads for libssh: the
    /// same 512 KiB as `readPasses` allows libssh.
    static let feedBudget = 512 * 1024

    /// The buffer fived reads sessions' sockets into (one per worker): reads of
    /// up to 256 KiB, plus room for a largest packet (256 KiB) left over.
    private let socketInput = SessionInputFeed(capacity: 512 * 1024 + 2 * SessionInputFeed.readerStep, readSize: 256 * 1024)

    /// Reads a session's socket for libssh. Returns whether the socket ran dry,
    /// or nil when libssh must read for itself this time (its layout could not
    /// be verified, the socket ended or failed: libssh's own read reports that).
    private func feed(_ connection: Connection) -> Bool? {
        let session = connection.session
        let socket = DescriptorEnd(fd: connection.socketFD, isSocket: true)
        let run = socketInput.run(
            budget: Self.feedBudget,
            take: { session.takeUnparsedInput(into: $0) },
            read: { socket.read(into: $0) },
            parse: { session.parseInput($0) },
            giveBack: { session.returnUnparsedInput($0) })
        switch run.outcome {
        case .drained: return true
        // Stopped by the budget: more is certain only if the kernel still holds
        // bytes (then the level-triggered socket wakes this worker again).
        case .budgetSpent: return Socket.bytesReadable(connection.socketFD) <= 0
        case .readerStopped: return true
        case .unavailable, .ended: return nil
        case .lost:
            logger.error("connection input lost", metadata: ["client": "\(connection.client)", "bytes": "\(run.bytesRead)"])
            connection.close(reason: .setupFailed("libssh did not take back its unparsed input"))
            return true
        }
    }

    /// After a pass: answer what libssh queued meanwhile, close connections whose
    /// transport ended, and keep each session's epoll interest in line with
    /// libssh's (POLLOUT while output is queued).
    private func settleTouched() {
        guard !touched.isEmpty else { return }
        let batch = touched
        touched.removeAll(keepingCapacity: true)
        for c in batch.values where connections[ObjectIdentifier(c)] != nil {
            serving = c
            if !c.closing { c.drainMessages() }
            if !c.closing && !c.session.isConnected {
                c.close(reason: c.isAuthenticated ? .clientDisconnected : .disconnectedBeforeAuthentication)
                continue
            }
            let reading = c.awaitingAuthorization ? 0 : PollEvents.readable
            let wanted = reading | (c.session.flushOutput() ? 0 : PollEvents.writable)
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
            case .adopt(let session, let client, let local, let slot):
                adoptNow(session, client: client, local: local, slot: slot)
            case .adoptTCPMUX(let fd, let client, let local, let slot):
                startTCPMUX(fd, client: client, local: local, slot: slot)
            case .openForwarded(let request, let fd):
                startForwarded(request, fd: fd)
            case .linger(let socket):
                linger(socket)
            case .perform(let body):
                body(self)
            case .shutdown:
                stopping = true
                for c in connections.values { c.close(reason: .stopping) }
                for t in tcpmux.values { t.stop(); settle(t) }
            }
        }
    }

    private func adoptNow(_ session: SSHSession, client: Endpoint, local: Endpoint, slot: StartupSlot) {
        nextConnectionID += 1
        let snapshot = config.snapshot
        let connection: Connection
        do {
            connection = try Connection(
                id: nextConnectionID, session: session, worker: self, client: client, local: local,
                startupSlot: slot, loginGraceSeconds: snapshot.limits.loginGraceSeconds, logger: logger)
            session.prepareServer()
            // libssh requires one key-exchange step before the session may join an event.
            _ = try session.handleKeyExchange()
            try connection.event.add(session)
        } catch {
            logger.info("connection failed", metadata: ["client": "\(client)", "reason": "\(error)"])
            DaemonMetrics.shared.connectionFailedToStart()
            startups.release(slot)
            session.disconnect()
            return
        }
        register(connection)
        logger.debug("connection accepted", metadata: ["client": "\(client)", "worker": "\(index)"])
    }

    /// Adds a session this worker dialed, connected and authenticated already
    /// (a node-to-node connection, Worker+Fleet), as one of its connections.
    func adoptOutbound(_ session: SSHSession, peer: Endpoint, local: Endpoint) throws(LibSSHError) -> Connection {
        nextConnectionID += 1
        let connection = try Connection(
            id: nextConnectionID, session: session, worker: self, client: peer, local: local,
            startupSlot: nil, loginGraceSeconds: 0, logger: logger)
        try connection.event.add(session)
        register(connection)
        return connection
    }

    private func register(_ connection: Connection) {
        connection.pollerToken = poller.add(connection.socketFD, events: PollEvents.readable, target: .session(connection))
        connection.registeredEvents = PollEvents.readable
        if stopping { connection.close(reason: .stopping) }
        connections[ObjectIdentifier(connection)] = connection
        connectionsByID[connection.id] = connection
        touched[ObjectIdentifier(connection)] = connection
        liveConnections.store(connections.count, ordering: .relaxed)
        DaemonMetrics.shared.connectionOpened()
    }

    /// Runs the pumps of channels that had events, until quiet or a bound of rounds.
    private func runDirty() {
        var rounds = 0
        while !dirty.isEmpty && rounds < 4 {
            rounds += 1
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for channel in batch.values {
                serving = channel.connection
                if channel.pump() { dirty[ObjectIdentifier(channel)] = channel }
                touched[ObjectIdentifier(channel.connection)] = channel.connection
                reconcile(channel)
            }
        }
    }

    /// libssh 0.10.6 does not say when a client reopens its window: re-check
    /// the channels that were waiting on it after every poll.
    /// True when a channel waiting on SSH has window and output again, and its
    /// session's socket is not waiting for POLLOUT: libssh took the window
    /// adjust inside one of fived's calls (ssh_message_get polls the socket when
    /// its queue is empty), so no epoll event would announce it. No I/O.
    private func waitingChannelsCanSend() -> Bool {
        watchedOnSSH.values.contains { channel in
            channel.channel.windowSize > 0 && channel.hasOutputToSend
                && channel.connection.registeredEvents & PollEvents.writable == 0
        }
    }

    /// Pumps the channels that wait on SSH and can send again; true when one did.
    @discardableResult
    private func recheckWaitingChannels() -> Bool {
        guard !watchedOnSSH.isEmpty else { return false }
        var pumped = false
        for channel in watchedOnSSH.values where !channel.finished {
            serving = channel.connection
            // Touched either way: when libssh still holds output (the client's
            // socket is full), settleTouched asks epoll for POLLOUT on it.
            touched[ObjectIdentifier(channel.connection)] = channel.connection
            if channel.channel.windowSize > 0 && channel.channel.session.flushOutput() {
                channel.outbound.sinkReady = true
                channel.errors.sinkReady = true
                if channel.pump() { dirty[ObjectIdentifier(channel)] = channel }
                reconcile(channel)
                pumped = true
            }
        }
        return pumped
    }

    func markDirty(_ channel: ServiceChannel) {
        dirty[ObjectIdentifier(channel)] = channel
    }

    func markClosing(_ connection: Connection) {
        closingConnections.append(connection)
    }

    func channelFinished(_ channel: ServiceChannel) {
        finishedChannels.append(channel)
    }

    /// Brings the poller's registrations for a channel in line with what it wants.
    /// Registrations are removed by token, and a descriptor is closed only after
    /// it is unregistered.
    private func reconcile(_ channel: ServiceChannel) {
        guard !channel.finished, let backend = channel.backend else { return }
        if let stream = backend.stream {
            poller.update(&channel.registeredMain, fd: stream.rawValue, events: channel.wantedMainEvents, target: .backend(channel))
        }
        if let errors = backend.errors {
            poller.update(&channel.registeredStderr, fd: errors.rawValue, events: channel.wantedStderrEvents, target: .stderr(channel))
            if channel.stderrFinished, channel.registeredStderr.token == 0 {
                backend.closeErrors()
            }
        }
        if channel.waitsOnSSH {
            watchedOnSSH[ObjectIdentifier(channel)] = channel
        } else {
            watchedOnSSH.removeValue(forKey: ObjectIdentifier(channel))
        }
    }

    // MARK: Backends that are not ready yet

    /// Watches a backend open in flight until it finishes or its deadline
    /// passes: a socket connect through epoll, a publisher's answer by its token.
    func watchPending(_ waiter: any AwaitsBackend) {
        guard let pending = waiter.pendingBackend else { return }
        connecting[ObjectIdentifier(waiter)] = waiter
        switch pending {
        case .connect(let connect):
            poller.update(
                &waiter.registeredConnect, fd: connect.descriptor.rawValue, events: PollEvents.writable,
                target: .connecting(waiter))
        case .publisher(let open):
            awaitingPublishers[open.token] = waiter
        case .process(let process):
            awaitingProcesses[ObjectIdentifier(process)] = waiter
        }
    }

    /// A connect polled writable, or its deadline passed.
    private func advanceConnect(_ waiter: any AwaitsBackend, now: Int64) {
        switch waiter.pendingBackend {
        case .connect(let connect)?:
            let before = connect.descriptor.rawValue
            let progress = connect.advance(now: now)
            switch progress {
            case .pending:
                if connect.descriptor.rawValue != before {
                    poller.remove(&waiter.registeredConnect)
                    poller.update(
                        &waiter.registeredConnect, fd: connect.descriptor.rawValue, events: PollEvents.writable,
                        target: .connecting(waiter))
                }
            case .connected(let backend):
                finishPending(waiter, .success(backend))
            case .failed(let failure):
                finishPending(waiter, .failure(failure))
            }
        case .publisher(let open)?:
            if now >= open.deadline {
                finishPending(waiter, .failure(BackendFailure(.published, "the publisher did not answer in time")))
            }
        case .process(let process)?:
            if now >= process.deadline {
                process.cancel()  // a late start is retired (Worker+Processes)
                finishPending(waiter, .failure(BackendFailure(.timeout, "the spawner did not start \(process.service) in time")))
            }
        case nil:
            break
        }
    }

    /// The publisher's worker says how the forwarded-tcpip open for `token` went
    /// (nil: confirmed; else why it failed).
    func publisherAnswered(token: UInt64, failure: String?) {
        guard let waiter = awaitingPublishers[token], case .publisher(let open)? = waiter.pendingBackend else { return }
        if let failure {
            finishPending(waiter, .failure(BackendFailure(.published, failure)))
        } else {
            finishPending(waiter, .success(BackendConnection(stream: open.stream)))
        }
    }

    private func finishPending(_ waiter: any AwaitsBackend, _ result: Result<BackendConnection, BackendFailure>) {
        poller.remove(&waiter.registeredConnect)
        connecting.removeValue(forKey: ObjectIdentifier(waiter))
        if case .publisher(let open)? = waiter.pendingBackend { awaitingPublishers.removeValue(forKey: open.token) }
        if case .process(let process)? = waiter.pendingBackend { awaitingProcesses.removeValue(forKey: ObjectIdentifier(process)) }
        waiter.backendConnectEnded(result)
        if let channel = waiter as? ServiceChannel {
            touched[ObjectIdentifier(channel.connection)] = channel.connection
        } else if let open = waiter as? PendingOpen {
            touched[ObjectIdentifier(open.connection)] = open.connection
        } else if let t = waiter as? TCPMUXConnection {
            settle(t)
        }
    }

    /// The spawner answered a pending exec start (Worker+Processes).
    func finishProcess(_ waiter: any AwaitsBackend, _ result: Result<BackendConnection, BackendFailure>) {
        finishPending(waiter, result)
    }

    /// Gives up a backend open whose channel or connection went away.
    func cancelConnect(_ waiter: any AwaitsBackend) {
        guard connecting.removeValue(forKey: ObjectIdentifier(waiter)) != nil else { return }
        poller.remove(&waiter.registeredConnect)
        if case .publisher(let open)? = waiter.pendingBackend { awaitingPublishers.removeValue(forKey: open.token) }
        if case .process(let process)? = waiter.pendingBackend { awaitingProcesses.removeValue(forKey: ObjectIdentifier(process)) }
        waiter.pendingBackend?.cancel()
    }

    /// A token for a forwarded-tcpip open this worker waits for (unique in the process).
    func nextPublisherToken() -> UInt64 {
        nextToken += 1
        return nextToken
    }

    // MARK: Teardown

    /// Tears down finished channels: unregisters descriptors, closes them, and
    /// reaps or terminates exec children.
    private func reapFinished() {
        while !finishedChannels.isEmpty {
            let batch = finishedChannels
            finishedChannels.removeAll()
            for channel in batch { teardown(channel) }
        }
        while !closingConnections.isEmpty {
            let batch = closingConnections
            closingConnections.removeAll()
            for c in batch { teardown(c) }
        }
    }

    private func teardown(_ channel: ServiceChannel) {
        let id = ObjectIdentifier(channel)
        dirty.removeValue(forKey: id)
        watchedOnSSH.removeValue(forKey: id)
        cancelConnect(channel)
        poller.remove(&channel.registeredMain)
        poller.remove(&channel.registeredStderr)
        if let backend = channel.takeBackend() { retire(backend) }
        channel.connection.forget(channel)
        channel.channel.release()
    }

    /// Closes a backend's descriptors; a child still running gets SIGHUP (its
    /// stream is closed, so it sees EOF/EPIPE anyway) and SIGKILL 2 s later, from
    /// the spawner, which reaps it.
    func retire(_ backend: BackendConnection) {
        backend.closeStream()
        backend.closeErrors()
        backend.process?.retire()
    }

    private func teardown(_ connection: Connection) {
        let key = ObjectIdentifier(connection)
        guard connections[key] != nil else { return }
        DaemonMetrics.shared.connectionEnded(connection.closeReason)
        for channel in connection.channels.values {
            channel.abort(.connectionEnded(connection.closeReason))
        }
        // Channels were queued by their release; tear them down before the session goes.
        let batch = finishedChannels
        finishedChannels.removeAll()
        for channel in batch { teardown(channel) }
        for pending in connection.pendingOpens.values {
            cancelConnect(pending)
            connection.releaseKeyChannel()
        }
        connection.pendingOpens.removeAll()
        for name in publications.releaseAll(connectionID: connection.id) {
            logger.info(
                "unpublished",
                metadata: [
                    "user": "\(connection.caller?.user ?? "-")", "client": "\(connection.client)", "service": "\(name)",
                    "reason": "\(connection.closeReason)",
                ])
        }
        dropPendingForwards(of: connection)
        connectionsByID.removeValue(forKey: connection.id)
        connection.releaseStartupSlot()
        connection.releaseKeyConnection()
        poller.remove(connection.pollerToken)
        connection.event.remove(connection.session)
        // When fived ends the connection (grace time, failures, a violation, a
        // limit), the client may still be sending: keep the socket long enough
        // for the DISCONNECT to arrive rather than be lost to a reset.
        let keep = connection.endedByFived && connection.session.isConnected ? dup(connection.socketFD) : -1
        connection.session.disconnect()
        if keep >= 0 {
            Syscall.setCloseOnExec(keep)
            try? Syscall.setNonBlocking(keep)
            linger(Descriptor(keep))
        }
        connections.removeValue(forKey: key)
        touched.removeValue(forKey: key)
        if serving === connection { serving = nil }
        liveConnections.store(connections.count, ordering: .relaxed)
        logger.debug(
            "connection closed",
            metadata: [
                "client": "\(connection.client)", "user": "\(connection.caller?.user ?? "-")", "reason": "\(connection.closeReason)",
            ])
    }

    /// Closes `socket` gracefully: write side shut, the peer's last bytes drained (see LingeringClose).
    func linger(_ socket: Descriptor) {
        let entry = LingeringClose(socket, now: MonotonicClock.now)
        lingering[ObjectIdentifier(entry)] = entry
        poller.update(&entry.registration, fd: socket.rawValue, events: PollEvents.readable, target: .lingering(entry))
        if entry.drain(now: MonotonicClock.now) { endLingering(entry) }
    }

    private func endLingering(_ entry: LingeringClose) {
        guard lingering.removeValue(forKey: ObjectIdentifier(entry)) != nil else { return }
        poller.remove(&entry.registration)
        entry.socket.close()
    }

    /// Timers: the login grace time, connect deadlines, channel drain deadlines
    /// and idle buffers, TCPMUX name timeouts.
    private func tick(now: Int64) {
        for c in connections.values where !c.isAuthenticated && !c.closing && now >= c.loginDeadline {
            logger.info("login grace time exceeded", metadata: ["client": "\(c.client)"])
            c.close(reason: .loginGraceExceeded)
        }
        for waiter in connecting.values where now >= (waiter.pendingBackend?.deadline ?? .max) {
            advanceConnect(waiter, now: now)
        }
        for c in connections.values {
            for channel in c.channels.values where !channel.finished {
                channel.tick(now: now)
            }
        }
        tickTCPMUX(now: now)
        tickPeerLinks(now: now)
        for entry in lingering.values where now >= entry.deadline { endLingering(entry) }
        checkLiveness(now: now)
    }

    /// client_alive_interval_seconds: a client silent for that long gets a
    /// keepalive (a global request wanting a reply); after client_alive_count_max
    /// unanswered ones it is dropped. Takeover probes past their deadline report dead.
    private func checkLiveness(now: Int64) {
        let snapshot = config.snapshot
        let interval = Int64(snapshot.clientAliveIntervalSeconds) * 1000
        for c in connections.values where !c.closing {
            // Packets libssh parsed outside `service` (a keepalive's reply read
            // inside ssh_send_keepalive's own poll) count as input too.
            if c.session.packetsReceived != c.packetsSeen { heard(from: c, at: now) }
            if !c.livenessProbes.isEmpty {
                let dead = c.livenessProbes.filter { now >= $0.deadline }
                c.livenessProbes.removeAll { now >= $0.deadline }
                for probe in dead { probe.report(false) }
                if c.closing { continue }
            }
            guard interval > 0, c.isAuthenticated, now - max(c.lastInput, c.lastProbe) >= interval else { continue }
            if c.probesUnanswered >= snapshot.clientAliveCountMax {
                let reason = ConnectionEndReason.keepaliveTimeout(count: c.probesUnanswered, interval: snapshot.clientAliveIntervalSeconds)
                logger.info(
                    "connection dropped",
                    metadata: [
                        "user": "\(c.caller?.user ?? "-")", "client": "\(c.client)", "reason": "\(reason)",
                    ])
                c.close(reason: reason)
                continue
            }
            probe(c, now: now)
        }
    }

    /// Sends a keepalive now. Packets libssh parsed before it (the last read
    /// pass's, not yet counted) are counted first, so that only what arrives
    /// after the keepalive can answer it.
    func probe(_ c: Connection, now: Int64) {
        if c.session.packetsReceived != c.packetsSeen { heard(from: c, at: now) }
        serving = c
        c.session.sendKeepalive()
        c.probesUnanswered += 1
        c.lastProbe = now
        touched[ObjectIdentifier(c)] = c
    }
}

// MARK: libssh's log

extension Worker: LibSSHLogSink {
    /// libssh's own log lines on this thread. Two of them mean a request fived
    /// never sees as a message:
    /// - a channel open with a maximum packet size of 0, which Debian's libssh
    ///   0.10.6 drops without an answer (the client would wait forever): that peer
    ///   is disconnected like any other that breaks the protocol;
    /// - `no-more-sessions@openssh.com` (OpenSSH PROTOCOL §2.2), which libssh
    ///   refuses as an unknown global request (messages.c:1590) and only logs:
    ///   the connection refuses session opens from then on.
    func libssh(logged line: String, priority: Int32, function: String) {
        // libssh writes "function: text".
        func text() -> Substring {
            line.hasPrefix(function + ": ") ? line.dropFirst(function.count + 2) : Substring(line)
        }
        if priority == 2 && function == "ssh_packet_global_request" {
            if text().hasPrefix("UNKNOWN SSH_MSG_GLOBAL_REQUEST no-more-sessions@openssh.com,"), let connection = serving {
                connection.peerWantsNoMoreSessions()
            }
        } else if priority <= 1, text().hasPrefix("Invalid maximum packet size"), let connection = serving {
            connection.protocolViolation("\(text()) (libssh drops the open unanswered)")
            return
        }
        logger.log(
            level: priority <= 1 ? .debug : .trace, "libssh",
            metadata: [
                "client": "\(serving.map { "\($0.client)" } ?? "-")", "function": "\(function)", "text": "\(text())",
            ])
    }
}

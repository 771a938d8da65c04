import CSystem
import FivedCore
import LibSSH
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One event-loop thread: an `SSHEvent` over its sessions, their backends and
/// exec children. A session lives on one worker for life and is touched by no
/// other thread; other threads talk to a worker only through `inbox` + eventfd.
final class Worker: @unchecked Sendable {
    enum Command {
        case adopt(SSHSession, client: Endpoint, local: Endpoint)
        case shutdown
    }

    let index: Int
    let config: ConfigStore
    let startups: StartupLimiter
    let authorizedKeys: AuthorizedKeysStore
    let logger: Logger
    private let inbox = Mutex<[Command]>([])
    private let wakeFD: Int32
    private var event: SSHEvent!
    private var thread: pthread_t?
    private let liveConnections = Atomic<Int>(0)

    private var connections: [ObjectIdentifier: Connection] = [:]
    private var dirty: [ObjectIdentifier: ServiceChannel] = [:]
    private var watchedOnSSH: [ObjectIdentifier: ServiceChannel] = [:]
    private var closingConnections: [Connection] = []
    private var finishedChannels: [ServiceChannel] = []
    private var orphans: [(backend: BackendConnection, killAt: Int64)] = []
    private var stopping = false
    private var nextConnectionID: UInt64
    private let statusProvider: @Sendable () -> String

    init(index: Int, config: ConfigStore, startups: StartupLimiter, authorizedKeys: AuthorizedKeysStore, logger: Logger,
         statusProvider: @escaping @Sendable () -> String) throws {
        self.index = index
        self.config = config
        self.startups = startups
        self.authorizedKeys = authorizedKeys
        self.logger = logger
        self.statusProvider = statusProvider
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
            event = try SSHEvent()
            try event.watch(DescriptorWatch(fd: wakeFD) { [unowned self] _ in
                var value: UInt64 = 0
                _ = read(self.wakeFD, &value, 8)
            }, events: Int16(POLLIN))
        } catch {
            logger.critical("worker could not start", metadata: ["worker": "\(index)", "reason": "\(error)"])
            return
        }
        var lastTick = MonotonicClock.now
        while true {
            let timeout: Int32 = dirty.isEmpty ? 1000 : 0
            event.poll(timeoutMilliseconds: timeout)
            handleInbox()
            if stopping && connections.isEmpty && orphans.isEmpty { break }
            runDirty()
            recheckWaitingChannels()
            reapFinished()
            let now = MonotonicClock.now
            if now - lastTick >= 250 {
                lastTick = now
                tick(now: now)
            }
            checkTransports()
            reapFinished()
        }
        Sys.close(wakeFD)
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
            case .shutdown:
                stopping = true
                for c in connections.values { c.close(reason: "fived stopping") }
                for i in orphans.indices { orphans[i].killAt = 0 }
            }
        }
    }

    private func adoptNow(_ session: SSHSession, client: Endpoint, local: Endpoint) {
        nextConnectionID += 1
        let snapshot = config.snapshot
        let connection = Connection(id: nextConnectionID, session: session, worker: self, client: client, local: local,
                                    loginGraceSeconds: snapshot.limits.loginGraceSeconds, logger: logger)
        do {
            try session.prepareServer(delegate: connection)
            // libssh requires one key-exchange step before the session may join an event.
            _ = try session.handleKeyExchange()
            try event.add(session)
        } catch {
            logger.info("connection failed", metadata: ["client": "\(client)", "reason": "\(error)"])
            connection.releaseStartupSlot()
            session.disconnect()
            return
        }
        if stopping { connection.close(reason: "fived stopping") }
        connections[ObjectIdentifier(connection)] = connection
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
                reconcile(pump)
            }
        }
    }

    /// libssh 0.10.6 does not say when a client reopens its window: re-check
    /// the channels that were waiting on it after every poll.
    private func recheckWaitingChannels() {
        guard !watchedOnSSH.isEmpty else { return }
        for pump in watchedOnSSH.values where !pump.finished {
            if pump.channel.windowSize > 0 && !pump.channel.session.hasPendingWrite {
                if pump.pump() { dirty[ObjectIdentifier(pump)] = pump }
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

    func channelStarted(_ pump: ServiceChannel) {
        markDirty(pump)
    }

    func channelFinished(_ pump: ServiceChannel) {
        finishedChannels.append(pump)
    }

    /// Brings the event's registrations for a channel in line with what it wants.
    /// Registrations are removed by the descriptor number they were made with, and
    /// a descriptor is closed only after it is unregistered.
    private func reconcile(_ pump: ServiceChannel) {
        guard !pump.finished, let backend = pump.backend else { return }
        let main = pump.wantedMainEvents
        if main != pump.registeredMain.events || (main != 0 && backend.fd != pump.registeredMain.fd) {
            if pump.registeredMain.fd >= 0 { event.unwatch(fd: pump.registeredMain.fd) }
            pump.registeredMain = (-1, 0)
            if main != 0, (try? event.watch(DescriptorWatch(fd: backend.fd) { [unowned pump] in pump.backendEvent($0) }, events: main)) != nil {
                pump.registeredMain = (backend.fd, main)
            }
        }
        let err = pump.wantedStderrEvents
        if err != pump.registeredStderr.events {
            if pump.registeredStderr.fd >= 0 { event.unwatch(fd: pump.registeredStderr.fd) }
            pump.registeredStderr = (-1, 0)
            if err != 0, (try? event.watch(DescriptorWatch(fd: backend.stderrFD) { [unowned pump] in pump.stderrEvent($0) }, events: err)) != nil {
                pump.registeredStderr = (backend.stderrFD, err)
            }
        }
        if pump.stderrFinished, pump.registeredStderr.fd < 0, backend.stderrFD >= 0 {
            backend.closeStderr()
        }
        let pid = pump.wantsProcessEvents
        if pid != (pump.registeredPid >= 0) {
            if pump.registeredPid >= 0 {
                event.unwatch(fd: pump.registeredPid)
                pump.registeredPid = -1
            } else if (try? event.watch(DescriptorWatch(fd: backend.pidFD) { [unowned pump] in pump.processExitEvent($0) }, events: Int16(POLLIN))) != nil {
                pump.registeredPid = backend.pidFD
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
        if pump.registeredMain.fd >= 0 { event.unwatch(fd: pump.registeredMain.fd) }
        if pump.registeredStderr.fd >= 0 { event.unwatch(fd: pump.registeredStderr.fd) }
        if pump.registeredPid >= 0 { event.unwatch(fd: pump.registeredPid) }
        pump.registeredMain = (-1, 0)
        pump.registeredStderr = (-1, 0)
        pump.registeredPid = -1
        if let backend = pump.takeBackend() {
            backend.closeStream()
            backend.closeStderr()
            if backend.childRunning, backend.reap() == nil {
                // The stream is closed (the child sees EOF/EPIPE); give it a moment, then end it.
                backend.signalChild(SIGHUP)
                orphans.append((backend, MonotonicClock.now + 2000))
                watchOrphan(backend)
            } else {
                backend.closeProcessDescriptor()
            }
        }
        pump.connection.forget(pump)
        pump.channel.release()
    }

    private func watchOrphan(_ backend: BackendConnection) {
        try? event.watch(DescriptorWatch(fd: backend.pidFD) { [unowned self] _ in
            self.reapOrphans(force: false)
        }, events: Int16(POLLIN))
    }

    private func reapOrphans(force: Bool) {
        let now = MonotonicClock.now
        orphans.removeAll { entry in
            if entry.backend.reap() != nil {
                event.unwatch(fd: entry.backend.pidFD)
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
        connection.releaseStartupSlot()
        event.remove(connection.session)
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
    }

    /// Finds sessions whose transport ended (EOF, error, or a disconnect).
    private func checkTransports() {
        for c in connections.values where !c.closing && !c.session.isConnected {
            c.close(reason: c.isAuthenticated ? "client disconnected" : "disconnected before authentication")
        }
    }

    func statusText() -> String { statusProvider() }
}

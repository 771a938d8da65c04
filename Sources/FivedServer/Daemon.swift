import FivedCore
import FivedSystem
import Foundation
import LibSSH
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The daemon: listeners, the acceptor (this thread) and the workers. One
/// graceful path out: SIGTERM/SIGINT stop accepting, close every connection
/// and return; SIGHUP reloads the configuration.
public final class Daemon: @unchecked Sendable {
    /// Why the daemon could not start; the message names the file, address or key.
    public struct StartupError: Error, CustomStringConvertible {
        /// What failed, stable for matching.
        public enum Code: String, Sendable {
            case listen, hostKey, signals, workers, fleet, accounts, spawner, privileges
        }
        public let code: Code
        public let description: String

        public init(_ code: Code, _ description: String) {
            self.code = code
            self.description = description
        }
    }

    let config: ConfigStore
    /// The configuration fived started with: its listeners and host keys stay in force until restart.
    private let startedWith: Configuration
    private let reload: @Sendable () throws(FivedCoreError) -> Configuration
    let logger: Logger
    let startups = StartupLimiter(wakes: true)
    let tcpmuxSources = StartupLimiter()
    /// A connection accepted while its startup slots were all taken.
    private struct Waiting {
        let socket: Descriptor
        let client: Endpoint
        let local: Endpoint
    }
    /// Connections waiting for a startup slot (acceptor thread only).
    private var waiting = StartupQueue<Waiting>(capacity: 0, capacityPerSource: 0)
    private let publications = Publications()
    private let keyUsage = KeyUsage()
    private let peers = WorkerDirectory()
    private var tcpmuxListeners: [Listener] = []
    private(set) var workers: [Worker] = []
    private var listeners: [Listener] = []
    private var bind: SSHBind!
    /// This node's fleet, with `[cluster]` (Fleet/).
    private var fleet: Fleet?
    /// Connections on an SSH listener that also answers TCPMUX, until they speak (Daemon+SharedPort).
    let sniffer = SharedPortSniffer()

    /// - Parameters:
    ///   - configuration: the validated configuration to start with.
    ///   - reload: reads the configuration again (SIGHUP); throws to keep the old one.
    /// The arguments the spawner is started with (`fived --internal-spawner ARGUMENTS`),
    /// so that it reads the same configuration.
    private let spawnerArguments: [String]
    private(set) var spawner: SpawnerLink!
    /// The daemon was started as root and is now `daemon_user`.
    var droppedRoot = false

    /// - Parameters:
    ///   - configuration: the validated configuration to start with.
    ///   - reload: reads the configuration again (SIGHUP); throws to keep the old one.
    ///   - spawnerArguments: fived's own command line without the program name.
    public init(
        configuration: Configuration, reload: @escaping @Sendable () throws(FivedCoreError) -> Configuration,
        spawnerArguments: [String], logger: Logger
    ) {
        self.config = ConfigStore(configuration)
        self.startedWith = configuration
        self.reload = reload
        self.spawnerArguments = spawnerArguments
        self.logger = logger
    }

    /// What `fived --check` validates beyond the configuration file: the host
    /// keys (present ones must be private and loadable; missing ones will be
    /// generated). Returns notes for the table; throws what `run` would refuse.
    public static func check(_ configuration: Configuration) throws(StartupError) -> [String] {
        LibSSH.initialize()
        var notes: [String] = []
        do {
            for path in configuration.hostKeys {
                if let note = try HostKeys.check(path: path) { notes.append(note) }
            }
        } catch {
            throw StartupError(.hostKey, error.description)
        }
        if let problem = ServiceAccounts.problems(configuration).first { throw StartupError(.accounts, problem) }
        return notes + (try checkFleet(configuration))
    }

    /// Starts everything and serves until SIGTERM or SIGINT.
    public func run(workerCount: Int? = nil) throws(StartupError) {
        LibSSH.initialize()
        let snapshot = config.snapshot
        if snapshot.logLevel == .trace { LibSSH.setLogVerbosity(3) }
        // Accounts first: a service that could not run as its user stops fived
        // before it listens or generates a host key.
        if let problem = ServiceAccounts.problems(snapshot).first { throw StartupError(.accounts, problem) }
        let activated: (ssh: [Listener], tcpmux: [Listener])?
        do {
            activated = try Listener.inherited()
        } catch {
            throw StartupError(.listen, "\(error.subject): \(error.reason)")
        }
        if let activated {
            // Socket activation: systemd's sockets replace `listen` (and, named
            // tcpmux in the .socket unit, the tcpmux listeners).
            listeners = activated.ssh
            tcpmuxListeners = activated.tcpmux
            logger.info("socket activation", metadata: ["sockets": "\(activated.ssh.count + activated.tcpmux.count)"])
        }
        for address in activated == nil ? snapshot.listen : [] {
            do {
                listeners += try Listener.open(address)
            } catch {
                throw StartupError(.listen, "cannot listen on \(address): \(error.call): \(error.reason)")
            }
        }
        for address in activated == nil ? snapshot.tcpmux : [] {
            do {
                tcpmuxListeners += try Listener.open(address)
            } catch {
                throw StartupError(.listen, "cannot listen for tcpmux on \(address): \(error.call): \(error.reason)")
            }
        }
        // Host keys after the listeners: a daemon that cannot listen leaves no
        // generated key behind ("nothing started").
        do {
            bind = try SSHBind()
            try bind.setIdentification(FivedVersion.sshIdentification)
            let keys = try HostKeys.load(paths: snapshot.hostKeys, logger: logger)
            for key in keys { try bind.addHostKey(key) }
            if let cluster = snapshot.cluster {
                fleet = try Self.makeFleet(cluster, hostKeys: keys, listeners: listeners.map(\.address), workers: peers, logger: logger)
            }
        } catch {
            if let e = error as? StartupError { throw e }
            if let e = error as? HostKeys.Failure { throw StartupError(.hostKey, e.description) }
            throw StartupError(.hostKey, "\(error)")
        }
        do {
            spawner = try SpawnerLink.start(executable: Self.executablePath, arguments: spawnerArguments, logger: logger)
        } catch {
            throw StartupError(.spawner, "cannot start the spawner: \(error)")
        }
        try dropPrivileges(snapshot)
        spawner.startReading()
        // After the drop: FlyingFox runs on the cooperative pool, whose threads
        // must be born without privilege (the bounding set is per thread).
        if let address = snapshot.metricsListen {
            do { try MetricsEndpoint.shared.listen(address, logger: logger) } catch { throw StartupError(.listen, error.description) }
        }
        do {
            try SignalPipe.install([SIGHUP, SIGTERM, SIGINT])
        } catch {
            throw StartupError(.signals, "cannot create the signal pipe: \(error)")
        }
        // After dropping root, users' files are opened by the spawner as their users.
        let opener = droppedRoot ? spawner : nil
        let authorizedKeys = AuthorizedKeysStore(logger: logger, spawner: opener)
        let certificateTrust = CertificateTrust(logger: logger, spawner: opener)
        let count = workerCount ?? max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 64))
        for i in 0..<count {
            do {
                let worker = try Worker(
                    index: i, config: config, startups: startups, authorizedKeys: authorizedKeys,
                    certificateTrust: certificateTrust, spawner: spawner, publications: publications, keyUsage: keyUsage, tcpmuxSources: tcpmuxSources,
                    logger: logger,
                    peers: peers)
                worker.fleet = fleet
                try worker.start()
                workers.append(worker)
            } catch {
                throw StartupError(.workers, "cannot start worker threads: \(error)")
            }
        }
        peers.set(workers)
        MetricsEndpoint.shared.startService(workers: workers, publications: publications, logger: logger)
        if let fleet { Self.startFleet(fleet, publications: publications, configuration: snapshot) }
        for l in listeners {
            logger.info("listening", metadata: ["address": "\(l.address)"])
        }
        for l in tcpmuxListeners {
            logger.info("listening for tcpmux", metadata: ["address": "\(l.address)", "tcpmux": "true"])
        }
        logger.info("ready", metadata: ["services": "\(snapshot.services.count)", "workers": "\(count)", "libssh": "\(LibSSH.version)"])
        acceptLoop()
        // A clean stop takes this node's names out of the fleet at once.
        fleet?.registry.stop()
        for l in listeners + tcpmuxListeners { l.socket.close() }
        for w in workers { w.shutdown() }
        for w in workers { w.join() }
        MetricsEndpoint.shared.stop()
        // The spawner retires whatever still runs (SIGHUP, SIGKILL 2 s later) and exits.
        spawner.close()
        logger.info("stopped")
    }

    /// Accepts until a stop signal; reloads on SIGHUP; admits waiting
    /// connections as startup slots free, and closes those that waited longer
    /// than login_grace_seconds.
    private func acceptLoop() {
        let all = listeners + tcpmuxListeners
        var pfds = all.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        pfds.append(pollfd(fd: sniffer.descriptor, events: Int16(POLLIN), revents: 0))
        pfds.append(pollfd(fd: startups.wake?.rawValue ?? -1, events: Int16(POLLIN), revents: 0))
        pfds.append(pollfd(fd: SignalPipe.readFD, events: Int16(POLLIN), revents: 0))
        waiting = StartupQueue(limits: config.snapshot.limits)
        while true {
            let grace = Int64(config.snapshot.limits.loginGraceSeconds) * 1000
            let next = [waiting.nextExpiry(maximumWait: grace), sniffer.nextDeadline].compactMap { $0 }.min()
            let timeout = next.map { Int32(clamping: max(0, $0 - MonotonicClock.now)) } ?? -1
            let rc = poll(&pfds, nfds_t(pfds.count), timeout)
            if rc < 0 {
                if errno == EINTR { continue }
                logger.critical("poll failed", metadata: ["reason": "\(errnoText(errno))"])
                return
            }
            if pfds[pfds.count - 1].revents != 0 {
                for sig in SignalPipe.take() {
                    switch sig {
                    case SIGHUP: reloadConfiguration()
                    case SIGTERM, SIGINT:
                        logger.info("stopping", metadata: ["signal": "\(sig == SIGTERM ? "TERM" : "INT")"])
                        for entry in waiting.removeAll() { entry.socket.close() }
                        closeSharedPortArrivals()
                        return
                    default: break
                    }
                }
            }
            if let wake = startups.wake, pfds[pfds.count - 2].revents != 0 { Syscall.clearEvent(wake.rawValue) }
            for i in all.indices where pfds[i].revents != 0 {
                acceptAll(from: all[i], tcpmux: i >= listeners.count)
            }
            decideSharedPort()
            admitWaiting()
        }
    }

    /// Starts the waiting connections that can have a slot now, sources in
    /// turn; closes those that waited longer than login_grace_seconds.
    private func admitWaiting() {
        guard !waiting.isEmpty else { return }
        let limits = config.snapshot.limits
        var slots: [StartupSlot] = []
        let admitted = waiting.admit { source in
            guard let slot = startups.admit(source: source, limits: limits) else { return false }
            slots.append(slot)
            return true
        }
        for (entry, slot) in zip(admitted, slots) {
            start(entry.socket, client: entry.client, local: entry.local, slot: slot)
        }
        for entry in waiting.expire(now: MonotonicClock.now, maximumWait: Int64(limits.loginGraceSeconds) * 1000) {
            logger.info("connection dropped: no startup slot within login_grace_seconds", metadata: ["client": "\(entry.client)"])
            DaemonMetrics.shared.startupDropped(.waitExpired)
            entry.socket.close()
        }
        startups.hasWaiters = !waiting.isEmpty
        DaemonMetrics.shared.startupsWaiting(waiting.count)
    }

    private func acceptAll(from listener: Listener, tcpmux: Bool) {
        for _ in 0..<64 {
            let accepted: (Descriptor, SocketAddress)?
            do {
                accepted = try Socket.accept(listener.fd, nonBlocking: tcpmux)
            } catch {
                if error.errno == ECONNABORTED { continue }
                logger.warning("accept failed", metadata: ["address": "\(listener.address)", "reason": "\(error.reason)"])
                if error.errno == EMFILE || error.errno == ENFILE { usleep(10_000) }
                return
            }
            guard let (socket, peer) = accepted else { return }
            guard let client = peer.endpoint, let local = Endpoint.local(of: socket.rawValue) else { continue }
            if tcpmux {
                serveTCPMUX(socket, client: client, local: local)  // Daemon+SharedPort
                continue
            }
            let limits = config.snapshot.limits
            let source = StartupSource.key(client.address, prefix6: limits.maxStartupsPerSourcePrefix6)
            guard let slot = startups.admit(source: source, limits: limits) else {
                // Every slot this source may take is in use: wait (no banner yet) rather than be dropped.
                if waiting.enqueue(Waiting(socket: socket, client: client, local: local), source: source, now: MonotonicClock.now) {
                    startups.hasWaiters = true
                    DaemonMetrics.shared.startupQueued(waiting: waiting.count)
                    logger.debug("connection waits for a startup slot", metadata: ["client": "\(client)", "waiting": "\(waiting.count)"])
                } else {
                    logger.info("connection dropped: too many unauthenticated connections", metadata: ["client": "\(client)"])
                    DaemonMetrics.shared.startupDropped(.queueFull)
                }
                continue
            }
            start(socket, client: client, local: local, slot: slot)
        }
    }

    /// Wraps an accepted socket in a libssh session and hands it to the worker
    /// with the fewest connections; with tcpmux_on_ssh_port, once its first bytes
    /// say SSH (`sniffed`).
    func start(_ socket: Descriptor, client: Endpoint, local: Endpoint, slot: StartupSlot, sniffed: Bool = false) {
        if !sniffed && sniff(socket, client: client, local: local, slot: slot) { return }
        configureAcceptedSocket(socket.rawValue)
        let session: SSHSession
        do {
            session = try bind.accept(fd: socket.rawValue)
        } catch {
            logger.warning("connection failed", metadata: ["client": "\(client)", "reason": "\(error.message)"])
            startups.release(slot)
            // Once libssh has taken the socket, freeing its session closes it;
            // closing it here too could hit another thread's new descriptor.
            if error.socketTaken { _ = socket.release() }
            return
        }
        _ = socket.release()  // the session owns it now
        let worker = workers.min { $0.connectionCount < $1.connectionCount }!
        worker.adopt(session, client: client, local: local, slot: slot)
    }

    /// The SSH socket stays blocking (LIBSSH-NOTES: libssh treats EAGAIN as fatal);
    /// libssh only sends after POLLOUT, and SO_SNDTIMEO bounds the time a client
    /// that stops reading can hold a worker in send(): such a session is dropped.
    private func configureAcceptedSocket(_ fd: Int32) {
        Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        Socket.setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1)
        Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, 60)
        Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, 15)
        Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, 4)
        Socket.setSendTimeout(fd, seconds: 10)
    }

    private func reloadConfiguration() {
        do {
            let fresh = try reload()
            if fresh.listen != startedWith.listen || fresh.tcpmux != startedWith.tcpmux || fresh.hostKeys != startedWith.hostKeys {
                logger.warning("listen addresses, tcpmux listeners and host keys change only on restart; still using those fived started with")
            }
            // The spawner reads it too and checks its users and groups; only a
            // configuration it accepted is taken, so the two never disagree.
            if let problem = spawner.reloadWaiting() {
                logger.error("configuration reload failed, keeping the old one", metadata: ["reason": "\(problem)"])
                return
            }
            config.replace(with: fresh)
            if let fleet {
                if fresh.cluster != startedWith.cluster { logger.warning("the [cluster] table changes only on restart; exports follow the new services") }
                fleet.registry.setExports(Fleet.exports(of: fresh, me: fleet.me))
            }
            waiting.resize(limits: fresh.limits)
            logger.info("configuration reloaded", metadata: ["services": "\(fresh.services.count)"])
        } catch {
            logger.error("configuration reload failed, keeping the old one", metadata: ["reason": "\(error)"])
        }
    }
}

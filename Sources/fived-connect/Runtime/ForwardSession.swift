import FivedCore
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// `-L` and `-R`: local listeners and published names carried over one shared
/// SSH connection. When the connection drops, the listeners stay up, channels
/// in flight are closed, and the connection is re-made with backoff; local
/// connections that arrive meanwhile wait (bounded) for it, and names are
/// published again.
final class ForwardSession: SSHClientDelegate {
    /// A name to publish with `tcpip-forward`, and where its channels go.
    struct Publication {
        enum State { case due(at: Int64), inFlight, published }
        let forward: RemoteForward
        var state: State = .due(at: 0)
    }

    /// A local connection accepted while there is no SSH connection.
    struct WaitingConnection {
        let fd: Int32
        let forward: LocalForward
        let peer: (host: String, port: UInt16)
        let deadline: Int64
    }

    let dialer: Dialer
    let localForwards: [LocalForward]
    private var diagnostics: Diagnostics { dialer.diagnostics }
    private var listeners: [(fd: Int32, forward: LocalForward)] = []
    private var readyListeners = Set<Int>()
    private var socketPaths: [String] = []
    private var publications: [Publication]
    private var publishing: Int?
    private var client: SSHClient?
    private var reactor: Reactor!
    private var pumps: [ObjectIdentifier: ChannelPump] = [:]
    private var incoming: [ChannelPump] = []
    private var waiting: [WaitingConnection] = []
    private var failedAttempts = 0
    private var nextAttempt: Int64 = 0
    private var firstConnection = true
    private var nextKeepalive: Int64 = 0
    /// Set when a refusal or a changed host key must end the run.
    private var fatal: ConnectFailure?

    init(dialer: Dialer, localForwards: [LocalForward], remoteForwards: [RemoteForward]) {
        self.dialer = dialer
        self.localForwards = localForwards
        self.publications = remoteForwards.map { Publication(forward: $0) }
    }

    /// How long a local connection waits for the SSH connection to come back.
    private var waitBound: Int64 { Int64(max(dialer.options.connectTimeout, 10)) * 1000 }

    func run() -> Int32 {
        SignalPipe.install()
        do {
            reactor = try Reactor()
        } catch {
            diagnostics.error(error.message)
            return 255
        }
        defer { cleanup() }
        for forward in localForwards {
            do {
                let (fd, shown) = try Sockets.listen(forward.bind)
                listeners.append((fd, forward))
                if case .unix(let path) = forward.bind { socketPaths.append(path) }
                if case .tcp(_, 0) = forward.bind {
                    diagnostics.warning("listening on \(shown) for '\(forward.service)'")
                } else {
                    diagnostics.debug("listening on \(shown) for '\(forward.service)'")
                }
            } catch {
                diagnostics.error("-L \(forward.bind): cannot listen: \(error)")
                return 255
            }
        }
        reactor.set(SignalPipe.readFD, events: Int16(POLLIN)) { _ in }
        for (index, listener) in listeners.enumerated() {
            reactor.set(listener.fd, events: Int16(POLLIN)) { [unowned self] _ in self.readyListeners.insert(index) }
        }

        do {
            try connect()
        } catch {
            diagnostics.error(error.message)
            return error.exitStatus
        }

        var again = false
        while true {
            reactor.poll(timeoutMilliseconds: again ? 0 : pollTimeout())
            if let sig = SignalPipe.take() {
                diagnostics.debug("stopped by signal \(sig)")
                return 0
            }
            let now = Posix.now()
            if let c = client, !c.isConnected { connectionLost(now: now) }
            if client == nil && now >= nextAttempt { reconnect(now: now) }
            if let fatal {
                diagnostics.error(fatal.message)
                return fatal.exitStatus
            }
            acceptReady(now: now)
            expireWaiting(now: now)
            publish(now: now)
            if let fatal {
                diagnostics.error(fatal.message)
                return fatal.exitStatus
            }
            again = stepPumps()
            registerPumps()
            if let c = client, dialer.options.serverAliveInterval > 0, now >= nextKeepalive {
                c.sendIgnore()
                nextKeepalive = now + Int64(dialer.options.serverAliveInterval) * 1000
            }
        }
    }

    private func pollTimeout() -> Int32 {
        let now = Posix.now()
        var deadline = now + 1000
        if client == nil { deadline = min(deadline, nextAttempt) }
        if client != nil && dialer.options.serverAliveInterval > 0 { deadline = min(deadline, nextKeepalive) }
        if case .due(let at)? = publications.first(where: { if case .due = $0.state { return true } else { return false } })?.state, client != nil {
            deadline = min(deadline, at)
        }
        return Int32(clamping: max(0, deadline - now))
    }

    // MARK: The SSH connection

    private func connect() throws(ConnectFailure) {
        let c = try dialer.dial()
        c.installMessageHandler(delegate: self)
        c.setBlocking(false)
        do {
            try reactor.add(c)
        } catch {
            throw .connection("\(dialer.shownHost): \(error.message)")
        }
        client = c
        failedAttempts = 0
        nextKeepalive = Posix.now() + Int64(dialer.options.serverAliveInterval) * 1000
        for i in publications.indices { publications[i].state = .due(at: 0) }
        publishing = nil
        if !firstConnection { diagnostics.warning("reconnected to \(dialer.shownHost)") }
        // Connections that waited get their channels now.
        let held = waiting
        waiting.removeAll()
        for w in held { startChannel(fd: w.fd, forward: w.forward, peer: w.peer) }
    }

    private func reconnect(now: Int64) {
        do {
            try connect()
        } catch {
            if error.message.hasPrefix("HOST KEY") || error.message.contains("is not known") {
                fatal = error
                return
            }
            failedAttempts += 1
            let delay = backoff(failedAttempts)
            nextAttempt = Posix.now() + delay
            diagnostics.warning("\(error.message); retrying in \(delay / 1000) s")
        }
    }

    /// 1, 2, 4, ... 30 seconds, with ±20 % jitter so many clients do not return at once.
    private func backoff(_ attempt: Int) -> Int64 {
        let base = min(30_000, 1000 << min(attempt - 1, 5))
        let jitter = Int.random(in: -(base / 5)...(base / 5))
        return Int64(max(500, base + jitter))
    }

    private func connectionLost(now: Int64) {
        guard let c = client else { return }
        let why = c.session.lastErrorText
        for pump in pumps.values { pump.finish(reason: "connection lost") }
        for pump in incoming { pump.finish(reason: "connection lost") }
        incoming.removeAll()
        for pump in Array(pumps.values) { teardown(pump) }
        reactor.remove(c)
        client = nil
        publishing = nil
        failedAttempts = 1
        let delay = backoff(1)
        nextAttempt = now + delay
        firstConnection = false
        diagnostics.warning("connection to \(dialer.shownHost) lost (\(why)); reconnecting in \(delay / 1000) s")
    }

    // MARK: -L

    private func acceptReady(now: Int64) {
        guard !readyListeners.isEmpty else { return }
        let ready = readyListeners
        readyListeners.removeAll()
        for index in ready {
            let listener = listeners[index]
            while let conn = Sockets.accept(listener.fd) {
                if client != nil {
                    startChannel(fd: conn.fd, forward: listener.forward, peer: (conn.host, conn.port))
                } else {
                    diagnostics.debug("no SSH connection yet: holding a connection for '\(listener.forward.service)'")
                    waiting.append(WaitingConnection(fd: conn.fd, forward: listener.forward, peer: (conn.host, conn.port),
                                                     deadline: now + waitBound))
                }
            }
        }
    }

    private func expireWaiting(now: Int64) {
        waiting.removeAll { w in
            guard now >= w.deadline else { return false }
            diagnostics.warning("closing a connection for '\(w.forward.service)': no SSH connection to \(dialer.shownHost) within \(waitBound / 1000) s")
            Posix.close(w.fd)
            return true
        }
    }

    private func startChannel(fd: Int32, forward: LocalForward, peer: (host: String, port: UInt16)) {
        guard let c = client, let channel = c.makeChannel() else {
            Posix.close(fd)
            return
        }
        Posix.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let pump = ChannelPump(channel: channel, service: forward.service.value, readFD: fd, writeFD: fd,
                               ownsDescriptors: true, originator: peer, phase: .opening)
        pumps[ObjectIdentifier(pump)] = pump
        diagnostics.debug("connection from \(peer.host):\(peer.port) -> '\(forward.service)'")
    }

    // MARK: -R

    private func publish(now: Int64) {
        guard let c = client, c.isConnected else { return }
        if publishing == nil {
            guard let next = publications.firstIndex(where: { if case .due(let at) = $0.state { return at <= now } else { return false } }) else { return }
            publishing = next
            publications[next].state = .inFlight
        }
        guard let index = publishing else { return }
        let name = publications[index].forward.name.value
        do {
            guard try c.listenForward(address: name, port: 1) else { return }
            publications[index].state = .published
            publishing = nil
            diagnostics.warning("published '\(name)' on \(dialer.shownHost) -> \(publications[index].forward.target)")
        } catch {
            publishing = nil
            guard c.isConnected else { return }
            let text = "\(dialer.shownHost) refused to publish '\(name)' (\(error.message)): the key needs "
                + "permitlisten=\"\(name):*\" in authorized_keys, and the name must not be a configured service or published by someone else"
            if firstConnection {
                fatal = .refused(text)
                return
            }
            publications[index].state = .due(at: now + 10_000)
            diagnostics.warning(text + "; trying again in 10 s")
        }
    }

    /// forwarded-tcpip opens for published names (inside libssh's dispatch:
    /// decide now, the message dies when this returns).
    func client(_ client: SSHClient, received message: borrowing SSHMessage) -> Bool {
        let kind = message.kind
        guard kind == .channelOpen(.forwardedTCPIP) else { return false }
        guard let destination = message.openDestination else { return false }
        guard let publication = publications.first(where: { $0.forward.name == ServiceName(destination.host) }) else {
            diagnostics.debug("refusing a channel for '\(ServiceName.printable(destination.host))': not published by this client")
            return false
        }
        let target = publication.forward.target
        let connection: (fd: Int32, done: Bool)
        do {
            connection = try Sockets.connect(target)
        } catch {
            diagnostics.warning("'\(publication.forward.name)': cannot connect to \(target): \(error)")
            return false
        }
        guard let channel = message.acceptChannel() else {
            Posix.close(connection.fd)
            return true
        }
        let reported = message.openOriginator
        let origin = reported ?? (host: "", port: 0)
        let pump = ChannelPump(channel: channel, service: publication.forward.name.value, readFD: connection.fd,
                               writeFD: connection.fd, ownsDescriptors: true,
                               originator: (origin.host, UInt16(truncatingIfNeeded: origin.port)),
                               phase: connection.done ? .open : .connecting)
        incoming.append(pump)
        diagnostics.debug("channel for '\(publication.forward.name)' from \(origin.host) -> \(target)")
        return true
    }

    // MARK: Pumps

    private func stepPumps() -> Bool {
        for pump in incoming { pumps[ObjectIdentifier(pump)] = pump }
        incoming.removeAll()
        var again = false
        for pump in Array(pumps.values) {
            if pump.phase == .opening {
                guard pump.advanceOpen() else { continue }
                if let refusal = pump.refusal {
                    diagnostics.warning("\(dialer.shownHost) refused service '\(pump.service)': \(refusal)")
                }
            }
            if pump.step() { again = true }
            if pump.phase == .finished {
                diagnostics.debug("'\(pump.service)' from \(pump.originator.host):\(pump.originator.port) ended: \(pump.endReason); "
                    + "\(pump.bytesToServer) bytes sent, \(pump.bytesFromServer) received")
                teardown(pump)
            }
        }
        return again
    }

    private func registerPumps() {
        for pump in pumps.values {
            let wanted = pump.wantedEvents
            reactor.set(pump.readFD, events: wanted.read | wanted.write) { [unowned pump] in pump.localEvent($0) }
        }
    }

    private func teardown(_ pump: ChannelPump) {
        reactor.remove(pump.readFD)
        if pump.ownsDescriptors { Posix.close(pump.readFD) }
        pump.channel.release()
        pumps.removeValue(forKey: ObjectIdentifier(pump))
    }

    private func cleanup() {
        for pump in Array(pumps.values) {
            pump.finish(reason: "stopping")
            teardown(pump)
        }
        for w in waiting { Posix.close(w.fd) }
        waiting.removeAll()
        for l in listeners {
            reactor.remove(l.fd)
            Posix.close(l.fd)
        }
        for path in socketPaths { unlink(path) }
        if let c = client {
            reactor.remove(c)
            c.setBlocking(true)
            c.disconnect()
        }
        client = nil
    }
}

import FivedCore
import FivedSystem
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// `-L` and `-R`: local listeners and published names carried over one shared
/// SSH connection. When the connection drops, the listeners stay up, channels
/// in flight are closed, and the connection is re-made with backoff; local
/// connections that arrive meanwhile wait (bounded) for it, and names are
/// published again.
public final class ForwardSession {
    /// A name to publish with `tcpip-forward`, and where its channels go.
    struct Publication {
        enum State { case due(at: Int64), inFlight, published }
        let forward: RemoteForward
        var state: State = .due(at: 0)
    }

    /// A local connection accepted while there is no SSH connection.
    struct WaitingConnection {
        let socket: Descriptor
        let forward: LocalForward
        let peer: (host: String, port: UInt16)
        let deadline: Int64
    }

    let dialer: Dialer
    let localForwards: [LocalForward]
    private var diagnostics: Diagnostics { dialer.diagnostics }
    private var listeners: [(socket: Descriptor, forward: LocalForward)] = []
    private var readyListeners = Set<Int>()
    private var socketPaths: [String] = []
    private var publications: [Publication]
    private var publishing: Int?
    private var client: SSHClient?
    private var reactor: Reactor!
    private var relays: [ObjectIdentifier: Relayed] = [:]
    private var waiting: [WaitingConnection] = []
    private var failedAttempts = 0
    private var nextAttempt: Int64 = 0
    private var firstConnection = true
    private var nextKeepalive: Int64 = 0
    /// Set when a refusal or a changed host key must end the run.
    private var fatal: ConnectFailure?

    /// A channel and the local socket it is joined to (owned here, closed at teardown).
    final class Relayed {
        let channel: LocalChannel
        let socket: Descriptor
        init(channel: LocalChannel, socket: Descriptor) {
            self.channel = channel
            self.socket = socket
        }
    }

    public init(dialer: Dialer, localForwards: [LocalForward], remoteForwards: [RemoteForward]) {
        self.dialer = dialer
        self.localForwards = localForwards
        self.publications = remoteForwards.map { Publication(forward: $0) }
    }

    /// How long a local connection waits for the SSH connection to come back.
    private var waitBound: Int64 { Int64(max(dialer.options.connectTimeout, 10)) * 1000 }

    public func run() -> Int32 {
        do {
            try SignalPipe.install([SIGINT, SIGTERM, SIGHUP])
            reactor = try Reactor()
        } catch {
            diagnostics.error("\(error)")
            return 255
        }
        defer { cleanup() }
        for forward in localForwards {
            do {
                let (socket, shown) = try LocalSockets.listen(forward.bind)
                listeners.append((socket, forward))
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
            reactor.set(listener.socket.rawValue, events: Int16(POLLIN)) { [unowned self] _ in self.readyListeners.insert(index) }
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
            if let sig = SignalPipe.take().first {
                diagnostics.debug("stopped by signal \(sig)")
                return 0
            }
            let now = MonotonicClock.now
            if let c = client, !c.isConnected { connectionLost(now: now) }
            if client == nil && now >= nextAttempt { reconnect(now: now) }
            if let fatal {
                diagnostics.error(fatal.message)
                return fatal.exitStatus
            }
            takeMessages()
            acceptReady(now: now)
            expireWaiting(now: now)
            publish(now: now)
            if let fatal {
                diagnostics.error(fatal.message)
                return fatal.exitStatus
            }
            again = stepRelays()
            registerRelays()
            if let c = client, dialer.options.serverAliveInterval > 0, now >= nextKeepalive {
                c.sendIgnore()
                nextKeepalive = now + Int64(dialer.options.serverAliveInterval) * 1000
            }
        }
    }

    private func pollTimeout() -> Int32 {
        let now = MonotonicClock.now
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
        c.setBlocking(false)
        do {
            try reactor.add(c)
        } catch {
            throw .connection("\(dialer.shownHost): \(error.message)")
        }
        client = c
        failedAttempts = 0
        nextKeepalive = MonotonicClock.now + Int64(dialer.options.serverAliveInterval) * 1000
        for i in publications.indices { publications[i].state = .due(at: 0) }
        publishing = nil
        if !firstConnection { diagnostics.warning("reconnected to \(dialer.shownHost)") }
        // Connections that waited get their channels now.
        let held = waiting
        waiting.removeAll()
        for w in held { startChannel(w.socket, forward: w.forward, peer: w.peer) }
    }

    private func reconnect(now: Int64) {
        do {
            try connect()
        } catch {
            if error.isFinal {
                fatal = error
                return
            }
            failedAttempts += 1
            let delay = backoff(failedAttempts)
            nextAttempt = MonotonicClock.now + delay
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
        for relay in Array(relays.values) {
            relay.channel.output.abandon()
            relay.channel.finish(.connectionEnded(.clientDisconnected))
            teardown(relay)
        }
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
            while let conn = LocalSockets.accept(listener.socket.rawValue) {
                if client != nil {
                    startChannel(conn.socket, forward: listener.forward, peer: (conn.host, conn.port))
                } else {
                    diagnostics.debug("no SSH connection yet: holding a connection for '\(listener.forward.service)'")
                    waiting.append(
                        WaitingConnection(
                            socket: conn.socket, forward: listener.forward, peer: (conn.host, conn.port),
                            deadline: now + waitBound))
                }
            }
        }
    }

    private func expireWaiting(now: Int64) {
        waiting.removeAll { w in
            guard now >= w.deadline else { return false }
            diagnostics.warning("closing a connection for '\(w.forward.service)': no SSH connection to \(dialer.shownHost) within \(waitBound / 1000) s")
            w.socket.close()
            return true
        }
    }

    private func startChannel(_ socket: Descriptor, forward: LocalForward, peer: (host: String, port: UInt16)) {
        guard let c = client, let channel = c.makeChannel() else {
            socket.close()
            return
        }
        Socket.setOption(socket.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let relay = Relayed(
            channel: LocalChannel(
                channel: channel, service: forward.service.value, readFD: socket.rawValue, writeFD: socket.rawValue,
                ownsDescriptors: true, originator: peer, opening: true),
            socket: socket)
        relays[ObjectIdentifier(relay)] = relay
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
            let text =
                "\(dialer.shownHost) refused to publish '\(name)' (\(error.message)): the key needs "
                + "permitlisten=\"\(name):*\" in authorized_keys, and the name must not be a configured service or published by someone else"
            if firstConnection {
                fatal = .refused(text)
                return
            }
            publications[index].state = .due(at: now + 10_000)
            diagnostics.warning(text + "; trying again in 10 s")
        }
    }

    /// forwarded-tcpip opens for published names: connect the local target and
    /// accept; anything else the server asks is refused.
    private func takeMessages() {
        guard let c = client else { return }
        while let message = c.nextMessage() {
            guard case .channelOpen(let open) = message.kind, open.type == .forwardedTCPIP, let destination = open.destination else {
                message.refuse()
                continue
            }
            guard let publication = publications.first(where: { $0.forward.name == ServiceName(destination.host) }) else {
                diagnostics.debug("refusing a channel for '\(ServiceName.printable(destination.host))': not published by this client")
                message.refuse()
                continue
            }
            let target = publication.forward.target
            let connection: (socket: Descriptor, done: Bool)
            do {
                connection = try LocalSockets.connect(target)
            } catch {
                diagnostics.warning("'\(publication.forward.name)': cannot connect to \(target): \(error)")
                message.refuse()
                continue
            }
            guard let channel = message.acceptChannelOpen() else {
                connection.socket.close()
                continue
            }
            let origin = open.originator ?? (host: "", port: 0)
            let relay = Relayed(
                channel: LocalChannel(
                    channel: channel, service: publication.forward.name.value, readFD: connection.socket.rawValue,
                    writeFD: connection.socket.rawValue, ownsDescriptors: true,
                    originator: (origin.host, UInt16(truncatingIfNeeded: origin.port)),
                    opening: false, connectingLocally: !connection.done),
                socket: connection.socket)
            relays[ObjectIdentifier(relay)] = relay
            diagnostics.debug("channel for '\(publication.forward.name)' from \(origin.host) -> \(target)")
        }
    }

    // MARK: Pumps

    private func stepRelays() -> Bool {
        var again = false
        for relay in Array(relays.values) {
            let channel = relay.channel
            if channel.opening {
                guard channel.advanceOpen() else { continue }
                if let refusal = channel.refusal {
                    diagnostics.warning("\(dialer.shownHost) refused service '\(channel.service)': \(refusal)")
                }
            }
            if channel.step() { again = true }
            if channel.isFinished {
                diagnostics.debug(
                    "'\(channel.service)' from \(channel.originator.host):\(channel.originator.port) ended: \(channel.endDescription); "
                        + "\(channel.bytesToServer) bytes sent, \(channel.bytesFromServer) received")
                teardown(relay)
            }
        }
        return again
    }

    private func registerRelays() {
        for relay in relays.values {
            let wanted = relay.channel.wantedEvents
            reactor.set(relay.socket.rawValue, events: wanted.read | wanted.write) { [unowned relay] in relay.channel.localEvent($0) }
        }
    }

    private func teardown(_ relay: Relayed) {
        reactor.remove(relay.socket.rawValue)
        relay.socket.close()
        relay.channel.channel.release()
        relays.removeValue(forKey: ObjectIdentifier(relay))
    }

    private func cleanup() {
        for relay in Array(relays.values) {
            relay.channel.finish(.stopping)
            teardown(relay)
        }
        for w in waiting { w.socket.close() }
        waiting.removeAll()
        for l in listeners {
            reactor.remove(l.socket.rawValue)
            l.socket.close()
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

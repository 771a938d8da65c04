import FivedSystem
import LibSSH
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A libssh server in this process, for testing the wrapper and the runtime
/// against real libssh on both ends: it listens on 127.0.0.1 (a free port the
/// kernel picks), accepts one connection, and runs its session on a thread of
/// its own, handing every queued request to `handle` and calling `tick` after
/// every poll (for answers that wait). Both closures run on the server thread.
public final class InProcessServer: @unchecked Sendable {
    public let port: UInt16
    private let listener: Descriptor
    private let bind: SSHBind
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?
    private let handle: (SSHSession, SSHMessage) -> Void
    private let tick: (SSHSession) -> Void
    /// Set once the session is up; read only on the server thread.
    public private(set) var session: SSHSession?

    public init(handle: @escaping (SSHSession, SSHMessage) -> Void, tick: @escaping (SSHSession) -> Void = { _ in }) throws {
        LibSSH.initialize()
        bind = try SSHBind()
        try bind.addHostKey(try SSHKey.generateEd25519())
        let address = try SocketAddress.resolve(host: "127.0.0.1", port: 0, passive: true)[0]
        listener = try Socket.listen(address, backlog: 4)
        port = Socket.boundPort(listener.rawValue)
        self.handle = handle
        self.tick = tick
        let box = Unmanaged.passRetained(self)
        var tid = pthread_t()
        guard
            pthread_create(
                &tid, nil,
                { arg in
                    let server = Unmanaged<InProcessServer>.fromOpaque(arg!).takeRetainedValue()
                    server.run()
                    return nil
                }, box.toOpaque()) == 0
        else {
            box.release()
            throw SystemError("pthread_create", errno: EAGAIN)
        }
        thread = tid
    }

    /// Stops the server thread and waits for it.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    deinit { stop() }

    private func run() {
        var accepted: Descriptor?
        while accepted == nil && !stopping.load(ordering: .relaxed) {
            var pfd = pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 50)
            accepted = (try? Socket.accept(listener.rawValue, nonBlocking: false))?.0
        }
        guard let socket = accepted, let session = try? bind.accept(fd: socket.release()) else { return }
        self.session = session
        session.prepareServer()
        _ = try? session.handleKeyExchange()
        guard let event = try? SSHEvent() else { return }
        try? event.add(session)
        while !stopping.load(ordering: .relaxed) && session.isConnected {
            event.poll(timeoutMilliseconds: 20)
            while let message = session.nextMessage() { handle(session, message) }
            tick(session)
        }
        event.remove(session)
        session.disconnect()
        self.session = nil
    }
}

/// A libssh client connected and authenticated (public key) to `port`.
public func connectedClient(port: UInt16, user: String = "tester") throws -> SSHClient {
    LibSSH.initialize()
    let client = try SSHClient()
    try client.setHost("127.0.0.1")
    try client.setPort(port)
    try client.setUser(user)
    try client.setTimeout(seconds: 10)
    try client.connect()
    _ = client.authenticateNone()
    let key = try SSHKey.generateEd25519()
    guard client.authenticate(with: key) == .success else {
        throw LibSSHError(.authentication, "the in-process server refused the key")
    }
    return client
}

/// Answers authentication as a test server does: every public key is welcome.
public func acceptEveryKey(_ message: SSHMessage) -> Bool {
    switch message.kind {
    case .service:
        message.acceptService()
        return true
    case .authentication(let request):
        switch request.state {
        case .probe?: message.acceptPublicKeyProbe()
        case .verified?: message.acceptAuthentication()
        default: message.refuse()
        }
        return true
    default:
        return false
    }
}

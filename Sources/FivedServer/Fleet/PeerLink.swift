import FivedCore
import FivedFleet
import FivedSystem
import LibSSH

/// A caller's channel to a name another node owns, as the caller's worker asks
/// the worker that carries the connection to that node to relay it.
struct RelayRequest: CallerOpenRequest, Sendable {
    /// The node that owns the name, and its record as the caller's worker read it.
    let owner: NodeName
    let record: NodeRecord
    /// The name as the caller asked for it (`web.host7`, `laptop-web`).
    let name: ServiceName
    /// `RelayedCaller.encoded`: the caller's identity for the owner node.
    let originator: String
    let originatorPort: UInt16
    /// `entry->owner`, for the log lines of both nodes.
    let hop: String
    /// The caller's worker, which waits for the answer under `token`.
    let replyTo: Worker
    let token: UInt64
    /// When the caller stops waiting (MonotonicClock ms).
    let deadline: Int64
}

/// This node's connection to one peer node, on the worker that carries it
/// (`Fleet.linkWorker`): dialed when a caller first needs it, then shared by
/// every relayed channel to that node; redialed with backoff when it drops.
/// Driven only by its worker's loop: a non-blocking TCP connect, then libssh's
/// client key exchange and public-key authentication with the node key, each
/// step taken when epoll says the socket is ready.
final class PeerLink: AwaitsBackend {
    enum Phase: String {
        case idle, connecting, handshaking, authenticating, up, down
    }

    let node: NodeName
    var record: NodeRecord
    var phase = Phase.idle
    /// The dial in progress or done.
    var client: SSHClient?
    var nodeKey: SSHKey?
    var dialedAddress = "-"
    var dialDeadline: Int64 = 0
    /// The TCP connect in flight (the worker polls it, as a backend connect).
    private(set) var pendingBackend: PendingBackend?
    var registeredConnect = PollRegistration.none
    /// The socket during the key exchange and authentication.
    var registeredDial = PollRegistration.none
    /// The SSH connection once up (a `Connection` of this worker).
    var connection: Connection?
    var failures = 0
    var retryAt: Int64 = 0
    var lastError = ""
    /// Callers waiting for the connection.
    var waiting: [(request: RelayRequest, stream: Descriptor)] = []
    /// Channel opens sent to the peer, waiting for its answer.
    var opening: [(request: RelayRequest, stream: Descriptor, channel: SSHChannel)] = []
    unowned let worker: Worker

    init(node: NodeName, record: NodeRecord, worker: Worker) {
        self.node = node
        self.record = record
        self.worker = worker
    }

    /// Whether the worker must look at this link on its next pass.
    var hasWork: Bool { !waiting.isEmpty || !opening.isEmpty || phase == .handshaking || phase == .authenticating }

    func startConnect(_ pending: PendingBackend) {
        pendingBackend = pending
    }

    func backendConnectEnded(_ result: Result<BackendConnection, BackendFailure>) {
        pendingBackend = nil
        worker.peerConnected(self, result)
    }
}

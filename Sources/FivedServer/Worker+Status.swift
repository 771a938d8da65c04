import Dispatch
import FivedCore
import FivedSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Every worker of the daemon, for the `status` service to ask. Set once, after
/// the workers have started.
final class WorkerDirectory: Sendable {
    private let list = Mutex<[Worker]>([])

    func set(_ workers: [Worker]) { list.withLock { $0 = workers } }

    var workers: [Worker] { list.withLock { $0 } }
}

/// One `status` request in flight. Workers own their connections and nobody else
/// may read them, so the owner of the status channel asks every worker (itself
/// included) through its inbox; each adds a picture of its own connections on its
/// own thread. Whoever completes the set (or the timeout) hands the report back to
/// the owner's thread, which writes it on the channel. No worker ever waits for
/// another, so a worker busy elsewhere delays only this answer.
final class StatusGathering: Sendable {
    /// How long to wait for a worker that is stuck (say in a 3 s backend connect)
    /// before answering without its connections.
    static let timeoutSeconds = 2.0

    private struct State {
        var waitingFor: Set<Int>
        var connections: [StatusReport.Connection] = []
        var tcpmux = 0
        var answered = false
    }

    private let state: Mutex<State>
    private let owner: Worker
    private let workerCount: Int
    /// The status channel; touched only on the owner's thread, and dropped there
    /// once answered, so the timeout's thread never holds the last reference.
    private nonisolated(unsafe) var pump: ServiceChannel?
    private let form: ChannelForm

    init(owner: Worker, pump: ServiceChannel, form: ChannelForm, workers: [Int]) {
        self.owner = owner
        self.pump = pump
        self.form = form
        self.workerCount = workers.count
        self.state = Mutex(State(waitingFor: Set(workers)))
    }

    /// A worker's part; the last one triggers the answer.
    func add(worker: Int, connections: [StatusReport.Connection], tcpmux: Int) {
        let complete = state.withLock { s -> Bool in
            guard !s.answered, s.waitingFor.remove(worker) != nil else { return false }
            s.connections += connections
            s.tcpmux += tcpmux
            if s.waitingFor.isEmpty { s.answered = true; return true }
            return false
        }
        if complete { deliver() }
    }

    /// Answers with what has arrived, naming the workers that did not answer.
    func expire() {
        let due = state.withLock { s -> Bool in
            guard !s.answered else { return false }
            s.answered = true
            return true
        }
        if due { deliver() }
    }

    private func deliver() {
        let parts = state.withLock { $0 }
        let publications = owner.publications
        var listed: [StatusReport.Publication] = []
        for name in publications.names {
            guard let p = publications.lookup(name) else { continue }
            let label = Worker.connectionLabel(p.connectionID)
            let holder = parts.connections.first { $0.label == label }
            listed.append(.init(name: name.value, connection: label, user: holder?.user, client: holder?.client))
        }
        let report = StatusReport(
            time: Int64(time(nil)), workers: workerCount,
            connections: parts.connections.sorted { Self.order($0.label).lexicographicallyPrecedes(Self.order($1.label)) },
            publications: listed, tcpmuxConnections: parts.tcpmux, silentWorkers: parts.waitingFor.sorted())
        let text = report.rendered() + (owner.fleet.map { $0.status.rendered() } ?? "")
        owner.perform { [self] _ in
            guard let pump else { return }
            self.pump = nil
            // The client may have gone meanwhile; then there is nobody to answer.
            guard !pump.finished, !pump.connection.closing else { return }
            pump.respond(form: form, service: "status", stdout: text, exitStatus: 0)
        }
    }

    /// Sorts `W.N` labels numerically.
    private static func order(_ label: String) -> [Int] {
        label.split(separator: ".").map { Int($0) ?? 0 }
    }
}

extension Worker {
    /// `W.N`: the worker (high bits of a connection id) and the connection's number there.
    static func connectionLabel(_ id: UInt64) -> String {
        "\(id >> 40).\(id & (1 << 40 - 1))"
    }

    /// Answers a status channel opened on this worker (on this worker's thread).
    func answerStatus(_ pump: ServiceChannel, form: ChannelForm) {
        pump.awaitAnswer(form: form, service: "status")
        var workers = peers.workers
        if workers.isEmpty { workers = [self] }
        let gathering = StatusGathering(owner: self, pump: pump, form: form, workers: workers.map(\.index))
        for worker in workers {
            worker.perform { w in
                w.statusConnections(to: gathering)
            }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + StatusGathering.timeoutSeconds) {
            gathering.expire()
        }
    }

    /// Adds this worker's connections and channels to a status report (on this worker's thread).
    private func statusConnections(to gathering: StatusGathering) {
        let now = MonotonicClock.now
        let pictures = connections.values.filter { !$0.closing }.map { c in
            StatusReport.Connection(
                label: Self.connectionLabel(c.id), user: c.caller?.user, fingerprint: c.caller?.key.blob.fingerprint,
                client: "\(c.client)", ageMilliseconds: now - c.acceptedAt,
                channels: c.channels.values.filter { !$0.finished }.sorted { $0.id < $1.id }.map { ch in
                    StatusReport.Channel(
                        id: ch.id, service: ch.service, form: ch.formLabel, bytesIn: ch.bytesIn, bytesOut: ch.bytesOut,
                        ageMilliseconds: now - ch.startedAt)
                })
        }
        gathering.add(worker: index, connections: pictures, tcpmux: tcpmux.count)
    }
}

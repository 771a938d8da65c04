import FivedCore
import Foundation
import Logging
import Synchronization

/// This node's view of, and part in, the fleet's name registry in etcd
/// (docs/fleet.md): a lease kept alive, this node's record and names created on
/// it, and a watched copy of every node's records for the workers to read.
///
/// All etcd I/O runs on Swift tasks here, never on a worker thread; workers
/// read `snapshot` (a lock and a copy) and hear the outcome of a claim through
/// the completion they pass, which they forward to their own inbox.
public final class Registry: Sendable {
    /// How a claim of a name came out.
    public enum ClaimResult: Sendable, Equatable {
        /// Created in etcd on this node's lease: the name is this node's fleet-wide.
        case registered
        /// Another node holds it (nil: etcd did not say which).
        case taken(NodeName?)
        /// etcd is out of reach: the name works on this node and is registered when etcd returns.
        case deferred(String)
    }

    let cluster: ClusterConfig
    private let loop: RegistryLoop
    private let view: SnapshotCell

    /// - Parameters:
    ///   - nodeRecord: this node's record for a lease id (its advertised address and keys).
    public init(cluster: ClusterConfig, nodeRecord: @escaping @Sendable (Int64) -> NodeRecord, logger: Logger) {
        self.cluster = cluster
        let view = SnapshotCell()
        self.view = view
        loop = RegistryLoop(
            cluster: cluster, etcd: EtcdClient(endpoints: cluster.etcdEndpoints), view: view,
            nodeRecord: nodeRecord, logger: logger)
    }

    /// What this node knows of the registry now.
    public var snapshot: RegistrySnapshot { view.withLock { $0 } }

    /// This node's name.
    public var me: NodeName { cluster.nodeName }

    /// Connects (and keeps reconnecting) in the background, registering `exports`.
    public func start(exports: [ServiceName: NameRecord]) {
        let loop = loop
        Task { await loop.run(exports: exports) }
    }

    /// Replaces the set of exported names (after a reload): new ones are
    /// registered, dropped ones deleted.
    public func setExports(_ exports: [ServiceName: NameRecord]) {
        let loop = loop
        Task { await loop.setExports(exports) }
    }

    /// Registers `name` for this node (a publication); `completion` runs on a
    /// task of this registry, never on the caller's thread.
    public func claim(_ name: ServiceName, record: NameRecord, completion: @escaping @Sendable (ClaimResult) -> Void) {
        let loop = loop
        Task { completion(await loop.claim(name, record: record)) }
    }

    /// Deletes `name` if this node registered it (a publication withdrawn).
    public func release(_ name: ServiceName) {
        let loop = loop
        Task { await loop.release(name) }
    }

    /// Revokes this node's lease (every name it holds goes at once); waits at most `timeout` seconds.
    public func stop(timeout: Double = 1.5) {
        let loop = loop
        let done = DispatchSemaphore(value: 0)
        Task {
            await loop.stop()
            done.signal()
        }
        _ = done.wait(timeout: .now() + timeout)
    }
}

/// The registry's state and etcd conversation, one call at a time (an actor:
/// a call that awaits etcd lets others in, so each re-checks what it relied on).
actor RegistryLoop {
    let cluster: ClusterConfig
    let etcd: EtcdClient
    let view: SnapshotCell
    let nodeRecord: @Sendable (Int64) -> NodeRecord
    let logger: Logger
    private var lease: Int64?
    /// The names this node wants registered: exports and live publications.
    private var desired: [ServiceName: NameRecord] = [:]
    private var exported: Set<ServiceName> = []
    /// The names created in etcd on the current lease.
    private var registered: Set<ServiceName> = []
    private var watch: EtcdWatch?
    private var stopping = false
    private var nextKeepalive = Date.distantPast
    private var failures = 0
    private var resyncWanted = true
    private var lastDownReason = ""

    init(
        cluster: ClusterConfig, etcd: EtcdClient, view: SnapshotCell, nodeRecord: @escaping @Sendable (Int64) -> NodeRecord,
        logger: Logger
    ) {
        self.cluster = cluster
        self.etcd = etcd
        self.view = view
        self.nodeRecord = nodeRecord
        self.logger = logger
    }

    private var prefix: String { cluster.prefix }
    private var me: NodeName { cluster.nodeName }

    func run(exports: [ServiceName: NameRecord]) async {
        exported = Set(exports.keys)
        desired.merge(exports) { $1 }
        while !stopping {
            if resyncWanted {
                do {
                    try await synchronize()
                    failures = 0
                } catch {
                    down("\(error)")
                    failures += 1
                    try? await Task.sleep(for: .milliseconds(min(2000, ReconnectBackoff.delay(afterFailures: failures))))
                    continue
                }
            }
            if Date() >= nextKeepalive, let lease {
                do {
                    let ttl = try await etcd.keepAlive(lease: lease)
                    if ttl <= 0 {
                        logger.warning("registry lease expired: registering again", metadata: ["lease": "\(lease)"])
                        self.lease = nil
                        resyncWanted = true
                        continue
                    }
                    nextKeepalive = Date().addingTimeInterval(Double(cluster.leaseSeconds) / 3)
                } catch {
                    down("\(error)")
                    continue
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Marks the registry out of touch: remote names are refused from now on.
    private func down(_ reason: String) {
        resyncWanted = true
        let wasLive = view.withLock { v -> Bool in
            defer {
                v.live = false
                v.reason = reason
            }
            return v.live
        }
        if wasLive || reason != lastDownReason {
            logger.warning("registry unreachable: remote names are refused, local ones keep working", metadata: ["reason": "\(reason)"])
        }
        lastDownReason = reason
    }

    /// (Re)joins: keeps or renews the lease, writes this node's record and
    /// names, reads every record and watches for changes from there.
    private func synchronize() async throws {
        if let current = lease, (try await etcd.keepAlive(lease: current)) <= 0 {
            lease = nil
        }
        if lease == nil {
            lease = try await etcd.grantLease(ttl: cluster.leaseSeconds)
            registered = []
        }
        guard let lease else { return }
        nextKeepalive = Date().addingTimeInterval(Double(cluster.leaseSeconds) / 3)
        try await registerNode(lease: lease)
        for (name, record) in desired where !registered.contains(name) {
            if case .taken(let holder) = try await create(name, record, lease: lease) {
                logger.warning(
                    "name held by another node: this node serves it locally only",
                    metadata: [
                        "service": "\(name)", "owner": "\(holder.map { "\($0)" } ?? "?")",
                    ])
                if !exported.contains(name) { desired.removeValue(forKey: name) }
            }
        }
        let (revision, entries) = try await etcd.range(prefix: prefix)
        var names: [ServiceName: NameRecord] = [:]
        var nodes: [NodeName: NodeRecord] = [:]
        for entry in entries {
            switch RegistryLayout.entry(forKey: entry.key, prefix: prefix) {
            case .name(let name)?:
                guard let record = try? NameRecord.decode(entry.value) else { continue }
                // Ours, but no longer wanted (withdrawn while etcd was away): delete it now.
                if record.owner == me, entry.lease == lease, desired[name] == nil {
                    try await etcd.delete(entry.key, ifLease: lease)
                    registered.remove(name)
                    continue
                }
                names[name] = record
            case .node(let node)?:
                if let record = try? NodeRecord.decode(entry.value) { nodes[node] = record }
            case nil:
                continue
            }
        }
        // The old watch (if any) must not report its end: it would mark this new state down.
        watch?.retire()
        let base = etcd.endpoints.first!
        let view = view
        let prefix = prefix
        watch = EtcdWatch(
            endpoint: base, prefix: prefix, fromRevision: revision + 1,
            onEvents: { events in
                view.withLock { v in
                    for event in events {
                        switch RegistryLayout.entry(forKey: event.key, prefix: prefix) {
                        case .name(let name)?:
                            if event.deleted { v.names.removeValue(forKey: name) } else { v.names[name] = try? NameRecord.decode(event.value) }
                        case .node(let node)?:
                            if event.deleted { v.nodes.removeValue(forKey: node) } else { v.nodes[node] = try? NodeRecord.decode(event.value) }
                        case nil:
                            break
                        }
                    }
                }
            },
            onEnd: { [weak self] why in
                // Refuse remote names at once; the loop reconnects.
                view.withLock { v in
                    v.live = false
                    v.reason = why
                }
                Task { await self?.watchEnded(why) }
            })
        view.withLock { $0 = RegistrySnapshot(live: true, reason: "", names: names, nodes: nodes) }
        resyncWanted = false
        logger.info(
            "registry connected",
            metadata: [
                "node": "\(me)", "lease": "\(lease)", "names": "\(names.count)", "nodes": "\(nodes.count)", "revision": "\(revision)",
            ])
    }

    func watchEnded(_ why: String) {
        guard !stopping else { return }
        down(why)
    }

    /// Writes this node's record; a record left by this node's previous run
    /// (the same node key, another lease) is taken over by revoking that lease.
    private func registerNode(lease: Int64) async throws {
        let record = nodeRecord(lease)
        let key = RegistryLayout.nodeKey(prefix: prefix, me)
        guard let holder = try await etcd.create(key, value: record.json, lease: lease), holder.lease != lease else { return }
        if let old = try? NodeRecord.decode(holder.value), old.nodeKey == record.nodeKey, holder.lease != 0 {
            try await etcd.revoke(lease: holder.lease)
            logger.info("registry: revoked the lease of this node's previous run", metadata: ["lease": "\(holder.lease)"])
            if try await etcd.create(key, value: record.json, lease: lease) == nil { return }
        }
        throw RegistryFailure("node name \(me) is registered by another node (another node key): choose another node_name")
    }

    private func create(_ name: ServiceName, _ record: NameRecord, lease: Int64) async throws -> Registry.ClaimResult {
        let key = RegistryLayout.nameKey(prefix: prefix, name)
        if let holder = try await etcd.create(key, value: record.json, lease: lease) {
            if holder.lease == lease {
                registered.insert(name)
                return .registered
            }
            return .taken((try? NameRecord.decode(holder.value))?.owner)
        }
        registered.insert(name)
        // A release that came while etcd answered: undo at once.
        if desired[name] == nil {
            try await etcd.delete(key, ifLease: lease)
            registered.remove(name)
        }
        view.withLock { $0.names[name] = record }
        return .registered
    }

    func claim(_ name: ServiceName, record: NameRecord) async -> Registry.ClaimResult {
        desired[name] = record
        let snapshot = view.withLock { $0 }
        guard snapshot.live, let lease else { return .deferred(snapshot.reason) }
        do {
            let result = try await create(name, record, lease: lease)
            if case .taken = result { desired.removeValue(forKey: name) }
            return result
        } catch {
            down("\(error)")
            return .deferred("\(error)")
        }
    }

    func release(_ name: ServiceName) async {
        desired.removeValue(forKey: name)
        exported.remove(name)
        guard registered.remove(name) != nil, let lease else { return }
        view.withLock { v in if v.names[name]?.owner == me { v.names.removeValue(forKey: name) } }
        do {
            try await etcd.delete(RegistryLayout.nameKey(prefix: prefix, name), ifLease: lease)
            // Claimed again while the delete was on its way (a publisher's takeover): put it back.
            if let record = desired[name], let current = self.lease {
                _ = try await create(name, record, lease: current)
            }
        } catch {
            down("\(error)")  // the next synchronize deletes what is no longer wanted
        }
    }

    func setExports(_ exports: [ServiceName: NameRecord]) async {
        for name in exported where exports[name] == nil { await release(name) }
        exported = Set(exports.keys)
        for (name, record) in exports where desired[name] != record {
            if case .taken(let holder) = await claim(name, record: record) {
                logger.warning(
                    "name held by another node: this node serves it locally only",
                    metadata: [
                        "service": "\(name)", "owner": "\(holder.map { "\($0)" } ?? "?")",
                    ])
            }
        }
    }

    func stop() async {
        stopping = true
        watch?.retire()
        if let lease { try? await etcd.revoke(lease: lease, timeout: 1) }
        lease = nil
    }
}

/// The snapshot workers read, behind one lock, shared by the façade and the loop.
final class SnapshotCell: Sendable {
    private let value = Mutex(RegistrySnapshot())

    func withLock<T>(_ body: (inout RegistrySnapshot) -> T) -> T {
        value.withLock { body(&$0) }
    }
}

/// A registry step that cannot succeed as things are (the node name is taken).
struct RegistryFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

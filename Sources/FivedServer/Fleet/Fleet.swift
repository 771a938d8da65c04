import FivedCore
import FivedFleet
import FivedSystem
import LibSSH
import Logging
import Synchronization

/// This node's part in a fleet (docs/fleet.md), shared by every worker: the
/// registry, this node's identity toward its peers, which worker carries the
/// connection to each peer, and per-peer counters for `status`.
final class Fleet: Sendable {
    let cluster: ClusterConfig
    let registry: Registry
    /// `HOST:PORT` other nodes reach this node at.
    let advertise: String
    /// This node's key toward its peers, loaded at start (the daemon cannot read
    /// the key file once it has dropped root).
    let nodeKey: SSHKey
    private let workers: WorkerDirectory
    private let peers = Mutex<[NodeName: FleetStatus.Peer]>([:])

    var me: NodeName { cluster.nodeName }

    init(cluster: ClusterConfig, registry: Registry, advertise: String, nodeKey: SSHKey, workers: WorkerDirectory) {
        self.cluster = cluster
        self.registry = registry
        self.advertise = advertise
        self.nodeKey = nodeKey
        self.workers = workers
    }

    /// The worker that carries this node's connection to `node`: the same one
    /// for every caller, so the connection is shared (one per peer).
    func linkWorker(for node: NodeName) -> Worker? {
        let all = workers.workers
        guard !all.isEmpty else { return nil }
        let hash = node.value.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
        return all[Int(hash % UInt32(all.count))]
    }

    /// Updates the counters of `node`.
    func updatePeer(_ node: NodeName, _ body: (inout FleetStatus.Peer) -> Void) {
        peers.withLock { table in
            var entry = table[node] ?? FleetStatus.Peer(node: node.value, state: "idle")
            body(&entry)
            table[node] = entry
        }
    }

    /// The fleet part of `status`.
    var status: FleetStatus {
        let snapshot = registry.snapshot
        return FleetStatus(
            node: me.value, registryLive: snapshot.live, registryReason: snapshot.reason, names: snapshot.names.count,
            nodes: snapshot.nodes.count, peers: peers.withLock { Array($0.values) })
    }

    /// The registry records of the exported services of `configuration`, by fleet name.
    static func exports(of configuration: Configuration, me: NodeName) -> [ServiceName: NameRecord] {
        var records: [ServiceName: NameRecord] = [:]
        for service in configuration.sortedServices where service.export {
            guard let name = RegistryLayout.exportedName(service.name, node: me) else { continue }
            records[name] = NameRecord(node: me, kind: .export, allow: service.allow)
        }
        return records
    }
}

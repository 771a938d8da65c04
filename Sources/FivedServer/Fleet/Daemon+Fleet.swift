import FivedCore
import FivedFleet
import FivedSystem
import LibSSH
import Logging

extension Daemon {
    /// Sets up this node's fleet (`[cluster]`): loads or generates the node key,
    /// works out the advertised address and makes the registry (not started yet).
    static func makeFleet(
        _ cluster: ClusterConfig, hostKeys: [SSHKey], listeners: [Endpoint], workers: WorkerDirectory,
        logger: Logger
    ) throws(StartupError) -> Fleet {
        let nodeKey: SSHKey
        do {
            guard let key = try HostKeys.load(paths: [cluster.nodeKey], logger: logger).first else {
                throw StartupError(.fleet, "cluster.node_key: \(cluster.nodeKey): no key")
            }
            nodeKey = key
        } catch let error as HostKeys.Failure {
            throw StartupError(.fleet, "cluster.node_key: \(error.description)")
        } catch {
            throw StartupError(.fleet, "cluster.node_key: \(error)")
        }
        let advertise: String
        if let configured = cluster.advertise {
            advertise = configured
        } else if let first = listeners.first, first.address != "0.0.0.0", first.address != "::" {
            advertise = "\(first)"
        } else {
            throw StartupError(
                .fleet,
                "cluster.advertise: required when the first listener is a wildcard address (\(listeners.first.map { "\($0)" } ?? "none")): give the address other nodes reach this one at"
            )
        }
        let fingerprint = { (key: SSHKey) in (try? key.publicBlob()).flatMap { PublicKeyBlob(bytes: $0)?.fingerprint } ?? "" }
        let nodeFingerprint = fingerprint(nodeKey)
        let hostFingerprints = hostKeys.map(fingerprint).filter { !$0.isEmpty }
        let registry = Registry(
            cluster: cluster,
            nodeRecord: { lease in
                NodeRecord(advertise: advertise, hostKeys: hostFingerprints, nodeKey: nodeFingerprint, lease: lease)
            }, logger: logger)
        logger.info(
            "fleet node",
            metadata: [
                "node": "\(cluster.nodeName)", "advertise": "\(advertise)", "node_key": "\(nodeFingerprint)",
                "etcd": "\(cluster.etcdEndpoints.joined(separator: ","))",
            ])
        return Fleet(cluster: cluster, registry: registry, advertise: advertise, nodeKey: nodeKey, workers: workers)
    }

    /// Starts the registry once the workers run: exports registered, released
    /// publications deleted.
    static func startFleet(_ fleet: Fleet, publications: Publications, configuration: Configuration) {
        let registry = fleet.registry
        publications.observeReleases { registry.release($0) }
        registry.start(exports: Fleet.exports(of: configuration, me: fleet.me))
    }

    /// What `--check` adds for `[cluster]`: its settings, and notes on the node key and peers file.
    static func checkFleet(_ configuration: Configuration) throws(StartupError) -> [String] {
        guard let cluster = configuration.cluster else { return [] }
        var notes = cluster.summary
        do {
            if let note = try HostKeys.check(path: cluster.nodeKey) { notes.append("note: " + note.replacingOccurrences(of: "host key", with: "node key")) }
        } catch {
            throw StartupError(.fleet, "cluster.node_key: \(error.description)")
        }
        let exported = configuration.sortedServices.filter(\.export).compactMap { RegistryLayout.exportedName($0.name, node: cluster.nodeName)?.value }
        notes.append("cluster exports: " + (exported.isEmpty ? "(none)" : exported.joined(separator: ", ")))
        for service in configuration.sortedServices where service.export && RegistryLayout.exportedName(service.name, node: cluster.nodeName) == nil {
            notes.append("note: \(service.name).\(cluster.nodeName) is longer than 64 characters: it cannot be exported")
        }
        return notes
    }
}

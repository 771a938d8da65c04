import TOMLKit

/// The `[cluster]` table and the `export` keys that depend on it.
extension ConfigFileParser {
    func cluster(_ table: TOMLTable) throws(FivedCoreError) -> ClusterConfig {
        let path = ["cluster"]
        try checkKeys(table, at: path, allowed: ClusterConfig.keys)
        guard let rawName = table["node_name"] else {
            throw error(.configInvalidValue, path, "needs node_name, this node's name in the fleet (NAME.NODE)")
        }
        let name = try NodeName(validating: string(rawName, at: path + ["node_name"]), context: context(path + ["node_name"]))
        guard let rawEndpoints = table["etcd_endpoints"] else {
            throw error(.configInvalidValue, path, "needs etcd_endpoints, e.g. [\"http://127.0.0.1:2379\"]")
        }
        let endpoints = try each(rawEndpoints, at: path + ["etcd_endpoints"], ClusterConfig.checkedEndpoint)
        guard !endpoints.isEmpty else {
            throw error(.configInvalidValue, path + ["etcd_endpoints"], "is empty: name at least one etcd client URL")
        }
        var cluster = ClusterConfig(nodeName: name, etcdEndpoints: endpoints)
        if let value = table["prefix"] {
            cluster.prefix = try ClusterConfig.checkedPrefix(string(value, at: path + ["prefix"]), context: context(path + ["prefix"]))
        }
        if let value = table["lease_seconds"] {
            cluster.leaseSeconds = try int(value, at: path + ["lease_seconds"], in: ClusterConfig.leaseRange)
        }
        if let value = table["node_key"] {
            cluster.nodeKey = try ConfigurationLoader.checkedServerFilePath(string(value, at: path + ["node_key"]), context: context(path + ["node_key"]))
        }
        if let value = table["peers_authorized_keys"] {
            cluster.peersAuthorizedKeys = try ConfigurationLoader.checkedServerFilePath(
                string(value, at: path + ["peers_authorized_keys"]), context: context(path + ["peers_authorized_keys"]))
        }
        if let value = table["advertise"] {
            cluster.advertise = try ClusterConfig.checkedAdvertise(string(value, at: path + ["advertise"]), context: context(path + ["advertise"]))
        }
        return cluster
    }

    /// `export = true` means something only in a fleet.
    func checkExports(_ config: Configuration) throws(FivedCoreError) {
        guard config.cluster == nil else { return }
        for service in config.sortedServices where service.export {
            let spelled = spellings[service.name] ?? service.name.value
            throw error(.configInvalidValue, ["services", spelled, "export"], "needs a [cluster] table: export registers NAME.NODE in the fleet")
        }
    }
}

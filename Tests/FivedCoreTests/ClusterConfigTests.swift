import Testing
@testable import FivedCore

/// The [cluster] table and `export`: defaults, every key, and one-line errors naming the key.
@Suite struct ClusterConfigTests {
    static let base = """
        [services.web]
        exec = ["/bin/cat"]
        export = true
        [cluster]
        node_name = "Host7"
        etcd_endpoints = ["http://127.0.0.1:2379", "https://[::1]:2379/"]
        """

    @Test func parsesTheTableWithDefaults() throws {
        let config = try ConfigurationLoader.parse(toml: Self.base, file: "f.toml")
        let cluster = try #require(config.cluster)
        #expect(cluster.nodeName.value == "host7")
        #expect(cluster.etcdEndpoints == ["http://127.0.0.1:2379", "https://[::1]:2379"])
        #expect(cluster.prefix == "/fived/" && cluster.leaseSeconds == 10)
        #expect(cluster.nodeKey == ClusterConfig.defaultNodeKey && cluster.peersAuthorizedKeys == ClusterConfig.defaultPeersAuthorizedKeys)
        #expect(cluster.advertise == nil)
        #expect(config.services[ServiceName("web")!]?.export == true)
    }

    @Test func parsesEveryKey() throws {
        let text =
            Self.base + """

                prefix = "/prod/fived/"
                lease_seconds = 30
                node_key = "/var/lib/fived/n"
                peers_authorized_keys = "/etc/fived/peers"
                advertise = "10.0.0.7:1"
                """
        let cluster = try #require(try ConfigurationLoader.parse(toml: text, file: "f.toml").cluster)
        #expect(
            cluster
                == ClusterConfig(
                    nodeName: NodeName("host7")!, etcdEndpoints: ["http://127.0.0.1:2379", "https://[::1]:2379"],
                    prefix: "/prod/fived/", leaseSeconds: 30, nodeKey: "/var/lib/fived/n",
                    peersAuthorizedKeys: "/etc/fived/peers", advertise: "10.0.0.7:1"))
    }

    @Test func noTableNoCluster() throws {
        #expect(try ConfigurationLoader.parse(toml: "[services.web]\nexec = [\"/bin/cat\"]\n", file: "f.toml").cluster == nil)
    }

    static let bad: [(String, String)] = [
        ("node_name = \"host.7\"", "cluster.node_name"),
        ("node_name = \"\"", "cluster.node_name"),
        ("lease_seconds = 1", "cluster.lease_seconds"),
        ("lease_seconds = 301", "cluster.lease_seconds"),
        ("prefix = \"fived\"", "cluster.prefix"),
        ("prefix = \"/fi ved/\"", "cluster.prefix"),
        ("node_key = \"relative/key\"", "cluster.node_key"),
        ("peers_authorized_keys = \"%h/peers\"", "cluster.peers_authorized_keys"),
        ("advertise = \"0.0.0.0:1\"", "cluster.advertise"),
        ("advertise = \"10.0.0.7\"", "cluster.advertise"),
        ("nodename = \"x\"", "cluster.nodename"),
    ]

    @Test(arguments: bad)
    func badValuesNameTheKey(_ entry: (String, String)) {
        let text = Self.base + "\n" + entry.0 + "\n"
        do {
            _ = try ConfigurationLoader.parse(
                toml: text.replacingOccurrences(of: "node_name = \"Host7\"\n", with: entry.0.hasPrefix("node_name") ? "" : "node_name = \"Host7\"\n"),
                file: "f.toml")
            Issue.record("\(entry.0) was accepted")
        } catch {
            #expect(error.message.contains(entry.1) && error.message.hasPrefix("f.toml:") && !error.message.contains("\n"), "\(error)")
        }
    }

    @Test func endpointsAndNameAreRequired() {
        for (text, key) in [
            ("[cluster]\netcd_endpoints = [\"http://e:2379\"]\n", "node_name"),
            ("[cluster]\nnode_name = \"a\"\n", "etcd_endpoints"),
            ("[cluster]\nnode_name = \"a\"\netcd_endpoints = []\n", "etcd_endpoints"),
            ("[cluster]\nnode_name = \"a\"\netcd_endpoints = [\"127.0.0.1:2379\"]\n", "etcd_endpoints"),
        ] {
            #expect(throws: FivedCoreError.self) { try ConfigurationLoader.parse(toml: text, file: "f.toml") }
            do { _ = try ConfigurationLoader.parse(toml: text, file: "f.toml") } catch { #expect(error.message.contains(key), "\(error)") }
        }
    }

    @Test func exportNeedsACluster() {
        do {
            _ = try ConfigurationLoader.parse(toml: "[services.Web]\nexec = [\"/bin/cat\"]\nexport = true\n", file: "f.toml")
            Issue.record("export without [cluster] was accepted")
        } catch {
            #expect(error.message.hasPrefix("f.toml:3: services.Web.export: needs a [cluster] table"), "\(error)")
        }
    }
}

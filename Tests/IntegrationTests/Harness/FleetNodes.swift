#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Three (or more) fived nodes on loopback sharing one etcd: one test
/// directory, one caller key authorized on every node, a node key per node, all
/// listed in one peers_authorized_keys file.
final class FleetNodes: Sendable {
    let environment: TestEnvironment
    let etcd: EtcdProcess
    let names: [String]
    let leaseSeconds: Int
    private let running = Mutex<[String: Fived]>([:])
    private let services: [String: [TestService]]
    /// Each node serves its metrics on `metrics_listen = "127.0.0.1:0"`.
    private let metrics: Bool

    var directory: TestDirectory { environment.directory }

    private init(
        environment: TestEnvironment, etcd: EtcdProcess, names: [String], leaseSeconds: Int, services: [String: [TestService]],
        metrics: Bool
    ) {
        self.metrics = metrics
        self.environment = environment
        self.etcd = etcd
        self.names = names
        self.leaseSeconds = leaseSeconds
        self.services = services
    }

    /// Starts etcd and the nodes `names`, each with its `services`.
    static func start(
        _ environment: TestEnvironment, names: [String] = ["a", "b", "c"], leaseSeconds: Int = 10,
        services: [String: [TestService]] = [:], metrics: Bool = false
    ) async throws -> FleetNodes {
        let etcd = try await EtcdProcess.start(in: environment.directory)
        var lines: [String] = []
        for name in names {
            let key = try await environment.newKey(.ed25519, name: "node_\(name)", comment: "node-\(name)")
            lines.append(key.publicLine)
        }
        // fived's own file (public keys), read by the daemon after it dropped root, as from /etc/fived.
        try environment.directory.write("peers_authorized_keys", lines.joined(separator: "\n") + "\n", mode: 0o644)
        let fleet = FleetNodes(
            environment: environment, etcd: etcd, names: names, leaseSeconds: leaseSeconds, services: services, metrics: metrics)
        do {
            for name in names { try await fleet.start(name) }
            for name in names { try await fleet.waitForRegistry(name) }
        } catch {
            await fleet.stopAll()
            throw error
        }
        return fleet
    }

    func options(_ name: String) -> FivedOptions {
        var options = FivedOptions(services: services[name] ?? [])
        options.name = name
        options.hostKey = directory.file("host_\(name)")
        options.extraTOML =
            (metrics ? "metrics_listen = \"127.0.0.1:0\"\n" : "") + """
                [services.status]
                allow = [\(tomlString(environment.key.comment))]

                [cluster]
                node_name = \(tomlString(name))
                etcd_endpoints = [\(tomlString(etcd.endpoint))]
                node_key = \(tomlString(directory.file("node_\(name)")))
                peers_authorized_keys = \(tomlString(directory.file("peers_authorized_keys")))
                lease_seconds = \(leaseSeconds)
                """
        return options
    }

    /// Starts node `name` (again).
    func start(_ name: String) async throws {
        let fived = try await Fived.start(environment, options(name))
        running.withLock { $0[name] = fived }
    }

    /// Waits until node `name` has logged `registry connected` `count` times in all.
    func waitForRegistry(_ name: String, count: Int = 1, timeout: Duration = .seconds(20)) async throws {
        let node = try self[name]
        let found = try await eventually(timeout: timeout) {
            node.logLines.filter { $0.message == "registry connected" }.count >= count
        }
        guard found else { throw HarnessError("node \(name) did not connect to etcd:\n\(node.logText)") }
    }

    subscript(name: String) -> Fived {
        get throws {
            guard let node = running.withLock({ $0[name] }) else { throw HarnessError("node \(name) is not running") }
            return node
        }
    }

    /// Kills node `name` with `signal` and forgets it.
    func kill(_ name: String, signal: Int32 = SIGKILL) async {
        guard let node = running.withLock({ $0.removeValue(forKey: name) }) else { return }
        node.process.signal(signal)
        _ = await node.process.wait(timeout: .seconds(10))
    }

    /// Stops every node (SIGTERM) and etcd; returns the nodes' logs.
    @discardableResult
    func stopAll() async -> String {
        let nodes = running.withLock { all -> [(String, Fived)] in
            defer { all.removeAll() }
            return all.sorted { $0.key < $1.key }
        }
        var logs = ""
        for (name, node) in nodes {
            _ = await node.stop()
            logs += "--- node \(name) ---\n\(node.logText)"
        }
        await etcd.stop()
        return logs
    }

    /// Runs `body`, printing every node's log when it throws; stops everything after.
    func run<R>(_ body: (FleetNodes) async throws -> R) async throws -> R {
        do {
            let result = try await body(self)
            let logs = await stopAll()
            if ProcessInfo.processInfo.environment["FIVED_IT_LOGS"] != nil { print(logs) }
            return result
        } catch {
            print("--- fleet test failed: \(error) ---\n\(await stopAll())--- end ---")
            throw error
        }
    }
}

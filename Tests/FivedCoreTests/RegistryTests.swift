import Testing
@testable import FivedCore

/// The fleet registry's pure parts: NAME.NODE and the key layout, the records,
/// what a snapshot resolves, the status rows, the reconnect backoff.
@Suite struct RegistryTests {
    static let me = NodeName("a")!
    static let b = NodeName("b")!
    static let nodeB = NodeRecord(advertise: "10.0.0.2:1", hostKeys: ["SHA256:x"], nodeKey: "SHA256:y", lease: 7)

    @Test func keysAndFleetNames() {
        let web = ServiceName("web")!
        #expect(RegistryLayout.nameKey(prefix: "/fived/", RegistryLayout.exportedName(web, node: Self.b)!) == "/fived/names/web.b")
        #expect(RegistryLayout.entry(forKey: "/fived/nodes/b", prefix: "/fived/") == .node(Self.b))
        #expect(RegistryLayout.entry(forKey: "/fived/names/web.b", prefix: "/fived/") == .name(ServiceName("web.b")!))
        #expect(RegistryLayout.entry(forKey: "/other/names/x", prefix: "/fived/") == nil)
        #expect(RegistryLayout.entry(forKey: "/fived/names/bad name", prefix: "/fived/") == nil)
        #expect(RegistryLayout.split(ServiceName("git.web.b")!).map { "\($0.service) \($0.node)" } == "git.web b")
        #expect(RegistryLayout.split(ServiceName("web")!) == nil)
        #expect(RegistryLayout.exportedName(ServiceName(String(repeating: "w", count: 63))!, node: Self.b) == nil)
    }

    @Test func recordsRoundTripAndRefuseGarbage() throws {
        let record = NameRecord(node: Self.b, kind: .export, allow: [.user("alice"), .comment("x y")])
        #expect(try NameRecord.decode(record.json) == record)
        #expect(try NameRecord.decode(record.json).allowRules == [.user("alice"), .comment("x y")])
        #expect(try NodeRecord.decode(Self.nodeB.json) == Self.nodeB)
        #expect(throws: FivedCoreError.self) { try NameRecord.decode(Array("{\"node\":\"b.c\",\"kind\":\"export\"}".utf8)) }
        #expect(throws: FivedCoreError.self) { try NameRecord.decode(Array("not json".utf8)) }
    }

    @Test func resolvesWhileLive() {
        let snapshot = RegistrySnapshot(
            live: true, reason: "",
            names: [
                ServiceName("web.b")!: NameRecord(node: Self.b, kind: .export, allow: nil),
                ServiceName("mine")!: NameRecord(node: Self.me, kind: .publish, allow: nil),
                ServiceName("orphan")!: NameRecord(node: NodeName("z")!, kind: .publish, allow: nil),
            ],
            nodes: [Self.b: Self.nodeB])
        guard case .remote(let remote, let node) = snapshot.resolve(ServiceName("web.b")!, me: Self.me) else {
            Issue.record("web.b is b's")
            return
        }
        #expect(remote.owner == Self.b && node == Self.nodeB)
        #expect(snapshot.resolve(ServiceName("mine")!, me: Self.me) == .local)
        #expect(snapshot.resolve(ServiceName("unknown")!, me: Self.me) == .local)
        if case .unavailable = snapshot.resolve(ServiceName("orphan")!, me: Self.me) {} else { Issue.record("a name of a node without a record") }
        #expect(snapshot.remoteNames(me: Self.me).map(\.name.value) == ["web.b"])
    }

    @Test func refusesRemoteNamesWhileNotLive() {
        let snapshot = RegistrySnapshot(
            live: false, reason: "etcd unreachable",
            names: [ServiceName("pub")!: NameRecord(node: Self.b, kind: .publish, allow: nil)], nodes: [Self.b: Self.nodeB])
        #expect(snapshot.resolve(ServiceName("pub")!, me: Self.me) == .unavailable("etcd unreachable"))
        #expect(snapshot.resolve(ServiceName("web.c")!, me: Self.me) == .unavailable("etcd unreachable"))
        #expect(snapshot.resolve(ServiceName("web.a")!, me: Self.me) == .local)
        #expect(snapshot.resolve(ServiceName("plain")!, me: Self.me) == .local)
        #expect(snapshot.remoteNames(me: Self.me).isEmpty)
    }

    @Test func statusRows() {
        let status = FleetStatus(
            node: "a", registryLive: true, registryReason: "", names: 3, nodes: 2,
            peers: [
                .init(node: "c", state: "down", address: "10.0.0.3:1", lastError: "connect refused"),
                .init(node: "b", state: "up", address: "10.0.0.2:1", channelsOpen: 1, channelsTotal: 5, bytesOut: 10, bytesIn: 20),
            ])
        #expect(
            status.rendered() == """

                fleet: node a, registry live, 3 names, 2 nodes
                PEER  STATE  ADDRESS     OPEN  RELAYED  BYTES_OUT  BYTES_IN  LAST_ERROR
                b     up     10.0.0.2:1  1     5        10         20        -
                c     down   10.0.0.3:1  0     0        0          0         connect refused

                """)
        let down = FleetStatus(node: "a", registryLive: false, registryReason: "etcd gone", names: 0, nodes: 0, peers: [])
        #expect(down.rendered().contains("registry UNREACHABLE (etcd gone): remote names refused\npeers: (none yet)"))
    }

    @Test func backoffDoublesToItsCap() {
        #expect(ReconnectBackoff.delay(afterFailures: 1, jitter: 0) == 250)
        #expect(ReconnectBackoff.delay(afterFailures: 2, jitter: 0) == 500)
        #expect(ReconnectBackoff.delay(afterFailures: 3, jitter: 1) == 1250)
        #expect(ReconnectBackoff.delay(afterFailures: 50, jitter: 0) == 8000)
        #expect(ReconnectBackoff.delay(afterFailures: 0, jitter: 0) == 250)
    }
}

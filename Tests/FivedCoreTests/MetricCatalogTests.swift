import Foundation
import Testing

@testable import FivedCore

/// The metric catalog, its bounded label values, `metrics_listen`, the
/// `[services.metrics]` table and the access decision for `metrics`.
@Suite struct MetricCatalogTests {
    @Test("names follow Prometheus conventions: fived_ prefix, _total counters, _seconds histograms, unique, valid labels")
    func conventions() {
        let names = MetricCatalog.all.map(\.name)
        #expect(Set(names).count == names.count)
        let nameBytes = Set("abcdefghijklmnopqrstuvwxyz0123456789_".utf8)
        for metric in MetricCatalog.all {
            #expect(metric.name.hasPrefix("fived_"), "\(metric.name)")
            #expect(metric.name.utf8.allSatisfy { nameBytes.contains($0) }, "\(metric.name)")
            #expect(!metric.help.isEmpty && !metric.help.contains("\n"), "\(metric.name)")
            switch metric.kind {
            case .counter: #expect(metric.name.hasSuffix("_total"), "\(metric.name)")
            case .gauge: #expect(!metric.name.hasSuffix("_total"), "\(metric.name)")
            case .histogram:
                #expect(metric.name.hasSuffix("_seconds"), "\(metric.name)")
                #expect(!metric.buckets.isEmpty && metric.buckets == metric.buckets.sorted(), "\(metric.name)")
            }
            if metric.kind != .histogram { #expect(metric.buckets.isEmpty, "\(metric.name)") }
            for label in metric.labels {
                #expect(label.utf8.allSatisfy { nameBytes.contains($0) } && !label.hasPrefix("__") && label != "le", "\(metric.name) \(label)")
            }
            #expect(MetricCatalog.named(metric.name) == metric)
        }
        #expect(MetricCatalog.named("fived_nothing") == nil)
    }

    @Test("the service label is the configured or built-in name, else one of a few fixed words, never what a client asked")
    func serviceLabel() {
        let configured: Set<String> = ["web", "git.mirror"]
        let published: Set<String> = ["laptop-web"]
        func label(_ shown: String) -> String {
            MetricLabels.service(shown, configured: { configured.contains($0.value) }, published: { published.contains($0.value) })
        }
        #expect(label("web") == "web")
        #expect(label("WEB") == "web")
        #expect(label("git.mirror") == "git.mirror")
        #expect(label("status") == "status")
        #expect(label("metrics") == "metrics")
        #expect(label("help") == "help")
        #expect(label("laptop-web") == "(published)")
        #expect(label("web.host7") == "(fleet)")
        #expect(label("nope") == "(other)")
        #expect(label("bad name\u{1b}[31m") == "(other)")
        #expect(label(String(repeating: "a", count: 200)) == "(other)")
        #expect(label("-") == "(none)")
    }

    @Test("outcomes, refusal reasons and forms map to fixed words")
    func boundedLabels() {
        #expect(MetricLabels.outcome(ConnectionEndReason.protocolViolation("anything at all")) == "protocol_violation")
        #expect(MetricLabels.outcome(ConnectionEndReason.keepaliveTimeout(count: 3, interval: 15)) == "keepalive_timeout")
        #expect(MetricLabels.outcome(ChannelEndReason.localWriteError("EPIPE")) == "backend_write_error")
        #expect(MetricLabels.outcome(ChannelEndReason.connectionEnded(.stopping)) == "connection_ended")
        #expect(MetricLabels.outcome(ChannelEndReason.peerClosed) == "client_closed")
        #expect(MetricLabels.refusal(.unknownService(ServiceName("x")!)) == "unknown_service")
        #expect(MetricLabels.refusal(.invalidName("\u{0}evil")) == "invalid_name")
        #expect(MetricLabels.refusal(.metricsNotAllowed) == "metrics_not_allowed")
        #expect(MetricLabels.form("direct-tcpip") == "direct-tcpip")
        #expect(MetricLabels.form("forwarded-tcpip") == "forwarded-tcpip")
        #expect(MetricLabels.form("x11") == "other")
        #expect(MetricLabels.form("tcpmux") == "tcpmux")
        // A TCPMUX connection's outcome: the client's error text never becomes a label.
        #expect(MetricLabels.outcome(TCPMUXEndReason.relay(.peerReadError("ECONNRESET")), service: "web") == "served")
        #expect(MetricLabels.outcome(TCPMUXEndReason.refused, service: "help") == "help")
        #expect(MetricLabels.outcome(TCPMUXEndReason.refused, service: "web") == "refused")
        #expect(MetricLabels.outcome(TCPMUXEndReason.errorBeforeName("\u{0}evil"), service: "-") == "client_error_before_name")
        #expect(MetricLabels.outcome(TCPMUXEndReason.nameTimeout, service: "-") == "name_timeout")
    }

    @Test("a fleet hop names the peer and whether this node is the entry or the owner")
    func fleetPeer() {
        #expect(MetricLabels.fleetPeer(hop: "a->b", me: "a")! == ("b", "outbound"))
        #expect(MetricLabels.fleetPeer(hop: "a->b", me: "b")! == ("a", "inbound"))
        #expect(MetricLabels.fleetPeer(hop: "a->b", me: "c") == nil)
        #expect(MetricLabels.fleetPeer(hop: "a->a", me: "a") == nil)
        #expect(MetricLabels.fleetPeer(hop: "garbage", me: "a") == nil)
    }

    @Test(
        "metrics_listen takes numeric loopback addresses only",
        arguments: [
            ("127.0.0.1:9101", true), ("127.1.2.3:0", true), ("[::1]:9101", true), ("[0:0:0:0:0:0:0:1]:9101", true),
            ("0.0.0.0:9101", false), ("10.0.0.7:9101", false), ("[::]:9101", false), ("[::ffff:127.0.0.1]:9101", false),
            ("localhost:9101", false), ("[fe80::1%lo]:9101", false),
        ])
    func loopbackOnly(raw: String, accepted: Bool) {
        let parsed = Result { () throws(FivedCoreError) in try ListenAddress(metricsParsing: raw, context: "metrics_listen") }
        switch parsed {
        case .success: #expect(accepted, "\(raw) was accepted")
        case .failure(let error):
            #expect(!accepted, "\(raw): \(error.message)")
            #expect(error.message.hasPrefix("metrics_listen: '\(raw)'"), "\(error.message)")
        }
    }

    @Test("the config file: metrics_listen, [services.metrics] allow, and its errors name the line and key")
    func configuration() throws {
        let config = try ConfigurationLoader.parse(
            toml: """
                metrics_listen = "127.0.0.1:9101"
                [services.metrics]
                allow = ["admin@laptop", "user:root"]
                """, file: "fived.toml")
        #expect(config.metricsListen == ListenAddress(host: "127.0.0.1", port: 9101))
        #expect(config.metricsAllow == [.comment("admin@laptop"), .user("root")])
        #expect(config.services.isEmpty)
        let none = try ConfigurationLoader.parse(toml: "metrics_listen = \"\"\n", file: "fived.toml")
        #expect(none.metricsListen == nil && none.metricsAllow.isEmpty)

        func message(_ toml: String) -> String? {
            do {
                _ = try ConfigurationLoader.parse(toml: toml, file: "fived.toml")
                return nil
            } catch {
                return error.message
            }
        }
        #expect(message("metrics_listen = \"0.0.0.0:9101\"\n")?.hasPrefix("fived.toml:1: metrics_listen: '0.0.0.0:9101' is not a loopback address") == true)
        #expect(message("metrics_listen = 9101\n") == "fived.toml:1: metrics_listen: must be a string, not an integer")
        #expect(
            message("[services.metrics]\nconnect = \"127.0.0.1:1\"\n")
                == "fived.toml:2: services.metrics.connect: 'metrics' is the built-in Prometheus endpoint: its table takes only 'allow'")
        #expect(
            message("[services.status]\nexec = [\"/bin/cat\"]\n")
                == "fived.toml:2: services.status.exec: 'status' is the built-in status table: its table takes only 'allow'")
    }

    @Test("--service metrics=... is refused, and metrics_listen may not share a listener's port")
    func loaderChecks() throws {
        var overrides = ConfigurationOverrides()
        overrides.services = ["metrics=tcp:127.0.0.1:9"]
        #expect(throws: FivedCoreError.self) { try ConfigurationLoader.load(overrides) }
        do {
            _ = try ConfigurationLoader.load(overrides)
        } catch {
            #expect(error.message.contains("'metrics' is the built-in Prometheus endpoint"), "\(error.message)")
        }
        let directory = NSTemporaryDirectory() + "fived-metrics-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/fived.toml"
        try "listen = [\"0.0.0.0:2222\"]\nmetrics_listen = \"127.0.0.1:2222\"\n".write(toFile: file, atomically: true, encoding: .utf8)
        var shared = ConfigurationOverrides()
        shared.configFile = file
        do {
            _ = try ConfigurationLoader.load(shared)
            Issue.record("a shared port was accepted")
        } catch {
            #expect(
                error.message == "\(file):2: metrics_listen: 127.0.0.1:2222 would share a port with the listener 0.0.0.0:2222: give metrics_listen another port"
            )
        }
    }

    @Test("metrics is opened as a service for keys its allow list admits, refused for others and by default, and listed by help")
    func access() {
        let admin = AccessPolicyTests.caller("", key: AccessPolicyTests.alice, user: "root")
        let other = AccessPolicyTests.caller("", key: AccessPolicyTests.bob, user: "bob")
        let allow: [AllowRule] = [.user("root")]
        let lookup: (ServiceName) -> ServiceAccess? = { _ in nil }
        for form in [ChannelForm.directTCPIP, .exec, .subsystem] {
            #expect(
                AccessPolicy.decide(
                    caller: admin, form: form, requested: "metrics", requestedPort: 1, services: lookup,
                    statusAllow: [], metricsAllow: allow) == .open(.metrics))
            #expect(
                AccessPolicy.decide(
                    caller: other, form: form, requested: "Metrics", requestedPort: 1, services: lookup,
                    statusAllow: [], metricsAllow: allow) == .refused(.metricsNotAllowed))
            // A caller that passes no metrics allow list refuses it (fail closed).
            #expect(
                AccessPolicy.decide(
                    caller: admin, form: form, requested: "metrics", requestedPort: 1, services: lookup,
                    statusAllow: allow) == .refused(.metricsNotAllowed))
        }
        let restricted = AccessPolicyTests.caller("restrict", key: AccessPolicyTests.alice, user: "root")
        #expect(
            AccessPolicy.decide(
                caller: restricted, form: .directTCPIP, requested: "metrics", requestedPort: 1, services: lookup,
                statusAllow: [], metricsAllow: allow) == .refused(.forwardingDisabled))
        #expect(AccessPolicy.visibleServices(caller: admin, services: [], statusAllow: [], metricsAllow: allow) == [.metrics])
        #expect(AccessPolicy.visibleServices(caller: other, services: [], statusAllow: [], metricsAllow: allow) == [])
        #expect(AccessPolicy.mayPublish(caller: admin, name: "metrics") == .refused(.reservedName(.metrics)))
        #expect(ServiceName.metrics.isReserved)
    }
}

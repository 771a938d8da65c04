import FivedCore
@testable import FivedServer
import Prometheus
import Testing

/// The daemon's metrics as swift-prometheus renders them: the catalog's help
/// texts and buckets reach the text, hooks move the series they name, and a
/// channel meter adds only what moved since its last report.
@Suite("Daemon metrics")
struct DaemonMetricsTests {
    /// The lines of a fresh instance's exposition after `body`.
    func rendered(_ body: (DaemonMetrics) -> Void) -> [String] {
        let metrics = DaemonMetrics(registry: PrometheusCollectorRegistry())
        body(metrics)
        return String(decoding: metrics.exposition(via: "test"), as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test("HELP and TYPE lines come from the catalog; series exist before their first event")
    func helpAndType() {
        let lines = rendered { _ in }
        for metric in [MetricCatalog.connectionsOpen, MetricCatalog.connections, MetricCatalog.refusals, MetricCatalog.startupsDropped] {
            #expect(lines.contains("# HELP \(metric.name) \(metric.help)"), "\(metric.name): \(lines)")
            #expect(lines.contains("# TYPE \(metric.name) \(metric.kind.rawValue)"), "\(metric.name)")
        }
        #expect(lines.contains("fived_connections_open 0.0"))
        #expect(lines.contains(#"fived_channel_refusals_total{reason="backend_unavailable"} 0"#), "\(lines)")
        #expect(lines.contains(#"fived_metrics_scrapes_total{via="test"} 1"#))
    }

    @Test("hooks move their series")
    func hooks() {
        let lines = rendered { m in
            m.connectionOpened()
            m.connectionOpened()
            m.connectionEnded(.loginGraceExceeded)
            m.authentication(method: "certificate", succeeded: true)
            m.startupQueued(waiting: 3)
            m.startupDropped(.queueFull)
            m.refused(.unknownService(ServiceName("nope")!))
            m.refused(.maxChannelsPerKey)
            m.execStarted()
            m.backendConnect(service: "web", nanoseconds: 2_000_000, succeeded: true)
            m.loopLag(worker: 1, nanoseconds: 300_000)
        }
        for expected in [
            "fived_connections_open 1.0",
            #"fived_connections_total{outcome="login_grace_exceeded"} 1"#,
            #"fived_authentications_total{method="certificate",result="success"} 1"#,
            "fived_startups_queued_total 1", "fived_startups_waiting 3.0",
            #"fived_startups_dropped_total{reason="queue_full"} 1"#,
            #"fived_channel_refusals_total{reason="unknown_service"} 1"#,
            #"fived_channel_refusals_total{reason="max_channels_per_key"} 1"#,
            "fived_exec_processes 1.0",
            #"fived_backend_connect_seconds_bucket{service="web",result="ok",le="0.001"} 0"#,
            #"fived_backend_connect_seconds_bucket{service="web",result="ok",le="0.0025"} 1"#,
            #"fived_backend_connect_seconds_count{service="web",result="ok"} 1"#,
            #"fived_worker_loop_lag_seconds_bucket{worker="1",le="0.0005"} 1"#,
            "# TYPE fived_worker_loop_lag_seconds histogram",
        ] {
            #expect(lines.contains(expected), "\(expected) not in:\n\(lines.joined(separator: "\n"))")
        }
    }

    @Test("a channel meter adds the bytes moved since its last report, and counts the channel open until it closes")
    func channelMeter() {
        // ChannelMeter reports to the shared instance: compare before and after.
        let shared = DaemonMetrics.shared
        let service = "meter-test-\(UInt32.random(in: 0...UInt32.max))"
        func value(_ line: String) -> String? {
            String(decoding: shared.registry.emitToBuffer(), as: UTF8.self).split(separator: "\n")
                .first { $0.hasPrefix(line + " ") }.map { String($0.dropFirst(line.count + 1)) }
        }
        var meter = ChannelMeter()
        meter.named(service: service, form: "exec")
        meter.named(service: "ignored", form: "exec")
        #expect(value(#"fived_channels_open{service="\#(service)",form="exec"}"#) == "1.0")
        meter.flush(movedIn: 10, movedOut: 0)
        meter.flush(movedIn: 25, movedOut: 7)
        #expect(value(#"fived_channel_bytes_total{service="\#(service)",direction="in"}"#) == "25")
        #expect(value(#"fived_channel_bytes_total{service="\#(service)",direction="out"}"#) == "7")
        meter.closed(.peerClosed, nanoseconds: 1_500_000_000, movedIn: 30, movedOut: 7, formLabel: "exec")
        #expect(value(#"fived_channel_bytes_total{service="\#(service)",direction="in"}"#) == "30")
        #expect(value(#"fived_channels_open{service="\#(service)",form="exec"}"#) == "0.0")
        #expect(value(#"fived_channels_total{service="\#(service)",form="exec",outcome="client_closed"}"#) == "1")
        #expect(value(#"fived_channel_duration_seconds_bucket{service="\#(service)",le="1.0"}"#) == "0")
        #expect(value(#"fived_channel_duration_seconds_bucket{service="\#(service)",le="5.0"}"#) == "1")
    }
}

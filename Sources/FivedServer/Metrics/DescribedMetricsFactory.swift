import CoreMetrics
import FivedCore
import Prometheus

/// A swift-metrics factory over a swift-prometheus registry that gives every
/// metric of `MetricCatalog` its `# HELP` text and, for timers, its own
/// buckets. (swift-prometheus's own `PrometheusMetricsFactory` registers every
/// metric with an empty help text, and its registry refuses a second
/// registration of a name with another help text, so the two cannot be mixed.)
///
/// swift-metrics types map to Prometheus types as in `PrometheusMetricsFactory`:
/// `Counter` → counter, `Meter` and non-aggregating `Recorder` → gauge, `Timer` →
/// histogram in seconds, aggregating `Recorder` → histogram of plain values.
struct DescribedMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    private func help(_ label: String) -> String {
        MetricCatalog.named(label)?.help ?? ""
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(name: label, labels: dimensions, help: help(label))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(name: label, labels: dimensions, help: help(label)) }
        let buckets = MetricCatalog.named(label)?.buckets ?? [1, 10, 100, 1000]
        return registry.makeValueHistogram(name: label, labels: dimensions, buckets: buckets, help: help(label))
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let seconds = MetricCatalog.named(label)?.buckets ?? [0.001, 0.01, 0.1, 1, 10]
        let buckets = seconds.map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
        return registry.makeDurationHistogram(name: label, labels: dimensions, buckets: buckets, help: help(label))
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}

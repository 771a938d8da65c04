import CoreMetrics
import FivedCore
import FivedSystem
import Prometheus
import Synchronization

/// The daemon's metrics: swift-metrics `Counter`s, `Meter`s and `Timer`s made
/// by a `DescribedMetricsFactory` into one swift-prometheus registry, which
/// renders the Prometheus text exposition (`exposition()`). The names, types,
/// labels and buckets are `MetricCatalog`'s.
///
/// One instance serves the process (`shared`), as swift-metrics' own
/// `MetricsSystem` would; the hooks in connections, channels and the acceptor
/// are one call each. Cost: a counter or gauge update is one atomic operation;
/// a labelled one first finds its series among those already made (a lock and
/// a dictionary lookup), which happens per connection, authentication or
/// channel event, never per packet. Channel bytes are added from each channel's own running
/// totals every quarter second and at its close (`ChannelMeter`), so the byte
/// pump itself does nothing for metrics.
final class DaemonMetrics: Sendable {
    /// The process's metrics.
    static let shared = DaemonMetrics()

    /// Where every metric lives; rendered by `exposition()`.
    let registry: PrometheusCollectorRegistry
    let factory: DescribedMetricsFactory

    let connectionsOpen: Meter
    let startupsQueued: CoreMetrics.Counter
    let startupsWaiting: Meter
    let publishedNames: Meter
    let execProcesses: Meter

    /// Run before each rendering, to bring scrape-time gauges up to date
    /// (published names; set by the daemon).
    private let beforeScrape = Mutex<(@Sendable () -> Void)?>(nil)

    /// Labelled series already made, by name and label values. Making one asks
    /// the registry, which checks the name, the label names and the help text
    /// every time: about 30 thousand instructions per channel opened
    /// (`bench/instructions.sh FIVED opens`), against a dictionary lookup here.
    /// Bounded as the label values are (`MetricLabels`).
    private let counters = Mutex<[SeriesKey: CoreMetrics.Counter]>([:])
    private let meters = Mutex<[SeriesKey: Meter]>([:])
    private let timers = Mutex<[SeriesKey: CoreMetrics.Timer]>([:])

    private struct SeriesKey: Hashable {
        let name: String
        let values: [String]
    }

    init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let factory = DescribedMetricsFactory(registry: registry)
        self.factory = factory
        connectionsOpen = Meter(label: MetricCatalog.connectionsOpen.name, factory: factory)
        startupsQueued = CoreMetrics.Counter(label: MetricCatalog.startupsQueued.name, factory: factory)
        startupsWaiting = Meter(label: MetricCatalog.startupsWaiting.name, factory: factory)
        publishedNames = Meter(label: MetricCatalog.publishedNames.name, factory: factory)
        execProcesses = Meter(label: MetricCatalog.execProcesses.name, factory: factory)
        // Series that exist from the start, so that rate() and absent() see them
        // before the first event.
        for outcome in ["client_disconnected", "disconnected_before_authentication"] {
            _ = counter(MetricCatalog.connections, outcome)
        }
        for result in ["success", "failure"] { _ = counter(MetricCatalog.authentications, "publickey", result) }
        for reason in MetricLabels.Refusal.allCases { _ = counter(MetricCatalog.refusals, reason.rawValue) }
        for reason in MetricLabels.StartupDrop.allCases { _ = counter(MetricCatalog.startupsDropped, reason.rawValue) }
    }

    // MARK: Series by label values

    /// The series of `description` with `values` for its labels, in order.
    func counter(_ description: MetricDescription, _ values: String...) -> CoreMetrics.Counter {
        Self.series(in: counters, description, values) { CoreMetrics.Counter(label: description.name, dimensions: $0, factory: factory) }
    }

    func meter(_ description: MetricDescription, _ values: String...) -> Meter {
        Self.series(in: meters, description, values) { Meter(label: description.name, dimensions: $0, factory: factory) }
    }

    func timer(_ description: MetricDescription, _ values: String...) -> CoreMetrics.Timer {
        Self.series(in: timers, description, values) { CoreMetrics.Timer(label: description.name, dimensions: $0, factory: factory) }
    }

    /// The series `made` holds for `description` and `values`, made (from the
    /// label pairs) and kept the first time.
    private static func series<Series>(
        in made: borrowing Mutex<[SeriesKey: Series]>, _ description: MetricDescription, _ values: [String],
        make: ([(String, String)]) -> Series
    ) -> Series {
        precondition(values.count == description.labels.count, "\(description.name) takes \(description.labels)")
        let key = SeriesKey(name: description.name, values: values)
        return made.withLock { series in
            if let existing = series[key] { return existing }
            let new = make(Array(zip(description.labels, values)))
            series[key] = new
            return new
        }
    }

    // MARK: Rendering

    /// Sets what runs before each rendering (scrape-time gauges).
    func beforeEachScrape(_ body: @escaping @Sendable () -> Void) {
        beforeScrape.withLock { $0 = body }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, counting
    /// the scrape under `via` (`channel` or `listener`).
    func exposition(via: String) -> [UInt8] {
        counter(MetricCatalog.metricsScrapes, via).increment()
        let refresh = beforeScrape.withLock { $0 }
        refresh?()
        return registry.emitToBuffer()
    }

    // MARK: Hooks (any thread)

    /// An SSH connection was handed to a worker.
    func connectionOpened() {
        connectionsOpen.increment()
    }

    /// An SSH connection that `connectionOpened` counted has ended.
    func connectionEnded(_ reason: ConnectionEndReason) {
        connectionsOpen.decrement()
        counter(MetricCatalog.connections, MetricLabels.outcome(reason)).increment()
    }

    /// A connection failed before a worker could take it on (never counted open).
    func connectionFailedToStart() {
        counter(MetricCatalog.connections, MetricLabels.outcome(.setupFailed(""))).increment()
    }

    /// A decided authentication attempt: `method` is `MetricLabels.authMethod`'s.
    func authentication(method: String, succeeded: Bool) {
        counter(MetricCatalog.authentications, method, succeeded ? "success" : "failure").increment()
    }

    /// A connection waits for a startup slot; `waiting` is how many wait now.
    func startupQueued(waiting: Int) {
        startupsQueued.increment()
        startupsWaiting.set(waiting)
    }

    /// How many connections wait for a startup slot now.
    func startupsWaiting(_ count: Int) {
        startupsWaiting.set(count)
    }

    /// A connection was dropped before the SSH banner.
    func startupDropped(_ reason: MetricLabels.StartupDrop) {
        counter(MetricCatalog.startupsDropped, reason.rawValue).increment()
    }

    /// A channel open or service request refused by the access decision.
    func refused(_ refusal: OpenRefusal) {
        counter(MetricCatalog.refusals, MetricLabels.refusal(refusal)).increment()
    }

    /// A channel open or service request refused by a limit, its type, or its backend.
    func refused(_ reason: MetricLabels.Refusal) {
        counter(MetricCatalog.refusals, reason.rawValue).increment()
    }

    /// A service process was started.
    func execStarted() {
        execProcesses.increment()
    }

    /// A service process that `execStarted` counted was reaped.
    func execEnded() {
        execProcesses.decrement()
    }

    /// A backend connect for `service` (a `MetricLabels.service` value) took `nanoseconds`.
    func backendConnect(service: String, nanoseconds: UInt64, succeeded: Bool) {
        timer(MetricCatalog.backendConnect, service, succeeded ? "ok" : "failed")
            .recordNanoseconds(Int64(clamping: nanoseconds))
    }

    /// How late worker `worker` ran a job handed to it.
    func loopLag(worker: Int, nanoseconds: UInt64) {
        timer(MetricCatalog.loopLag, "\(worker)").recordNanoseconds(Int64(clamping: nanoseconds))
    }
}

extension MetricLabels {
    /// `reason` of `fived_startups_dropped_total`.
    enum StartupDrop: String, CaseIterable {
        /// max_startups reached and no room to wait.
        case queueFull = "queue_full"
        /// Waited login_grace_seconds without a slot.
        case waitExpired = "wait_expired"
        /// A plain TCPMUX client over max_startups_per_source.
        case tcpmuxPerSource = "tcpmux_per_source"
    }
}

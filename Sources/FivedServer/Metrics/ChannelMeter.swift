import CoreMetrics
import FivedCore
import FivedSystem
import LibSSH

/// A channel's part in the metrics, kept by the channel and touched on its
/// worker's thread only: the labels it was counted under once it named its
/// service (`fived_channels_open`), its byte counters, looked up once, and the
/// bytes already added to them. Its bytes reach the counters every quarter
/// second (the worker's tick) and at its close, as the difference from what
/// was added before, so the relay itself never touches a metric. A channel
/// relayed through another fleet node adds the same bytes to that peer's
/// series too, from the first tick after its hop is known.
struct ChannelMeter {
    /// `service` and `form` labels, once named.
    private(set) var labels: (service: String, form: String)?
    private var bytesIn: CoreMetrics.Counter?
    private var bytesOut: CoreMetrics.Counter?
    private var addedIn = 0
    private var addedOut = 0
    /// The fleet peer this channel is relayed through, and whether this node is
    /// the entry (`outbound`) or the owner (`inbound`); nil for a local channel.
    private(set) var fleetPeer: (node: String, direction: String)?
    private var fleetIn: CoreMetrics.Counter?
    private var fleetOut: CoreMetrics.Counter?
    /// The channel was answered with a refusal (its outcome is `refused`).
    var refused = false

    /// Counts the channel open under `service` and `form` (once; later names are ignored).
    mutating func named(service: String, form: String) {
        guard labels == nil else { return }
        labels = (service, form)
        let metrics = DaemonMetrics.shared
        metrics.meter(MetricCatalog.channelsOpen, service, form).increment()
        bytesIn = metrics.counter(MetricCatalog.channelBytes, service, "in")
        bytesOut = metrics.counter(MetricCatalog.channelBytes, service, "out")
    }

    /// The channel is relayed through fleet node `node` (once): its bytes go to
    /// that peer's series too, those already counted included. `reversed` for
    /// the entry node's leg toward the owner, whose peer is the service's side:
    /// what it receives is the service's output.
    mutating func relayed(through node: String, direction: String, reversed: Bool = false) {
        guard fleetPeer == nil else { return }
        fleetPeer = (node, direction)
        let metrics = DaemonMetrics.shared
        let fleetIn = metrics.counter(MetricCatalog.fleetBytes, node, direction, reversed ? "out" : "in")
        let fleetOut = metrics.counter(MetricCatalog.fleetBytes, node, direction, reversed ? "in" : "out")
        if addedIn > 0 { fleetIn.increment(by: addedIn) }
        if addedOut > 0 { fleetOut.increment(by: addedOut) }
        self.fleetIn = fleetIn
        self.fleetOut = fleetOut
    }

    /// Adds the bytes moved since the last call (`moved*` are the channel's running totals).
    mutating func flush(movedIn: Int, movedOut: Int) {
        if movedIn > addedIn, let bytesIn {
            bytesIn.increment(by: movedIn - addedIn)
            fleetIn?.increment(by: movedIn - addedIn)
            addedIn = movedIn
        }
        if movedOut > addedOut, let bytesOut {
            bytesOut.increment(by: movedOut - addedOut)
            fleetOut?.increment(by: movedOut - addedOut)
            addedOut = movedOut
        }
    }

    /// The channel closed after `nanoseconds`: it leaves `fived_channels_open`
    /// and is counted with its outcome and duration. A channel that never named
    /// a service is counted under `(none)`.
    mutating func closed(_ reason: ChannelEndReason, nanoseconds: UInt64, movedIn: Int, movedOut: Int, formLabel: String) {
        let metrics = DaemonMetrics.shared
        if labels == nil {
            named(service: "(none)", form: MetricLabels.form(formLabel))
        }
        flush(movedIn: movedIn, movedOut: movedOut)
        guard let (service, form) = labels else { return }
        metrics.meter(MetricCatalog.channelsOpen, service, form).decrement()
        let outcome = refused ? "refused" : MetricLabels.outcome(reason)
        metrics.counter(MetricCatalog.channels, service, form, outcome).increment()
        metrics.timer(MetricCatalog.channelDuration, service).recordNanoseconds(Int64(clamping: nanoseconds))
    }
}

extension ServiceChannel {
    /// The channel has named its service (or fived answers it): count it open.
    func meterNamed() {
        meter.named(service: connection.serviceLabel(service), form: MetricLabels.form(formLabel))
    }

    /// A backend was joined to the channel: its connect time, if one was started for it.
    func meterAttached() {
        guard let began = connection.backendConnectStarts.removeValue(forKey: id) else { return }
        DaemonMetrics.shared.backendConnect(
            service: connection.serviceLabel(service), nanoseconds: MonotonicClock.nanoseconds &- began, succeeded: true)
    }

    /// The worker's quarter-second tick: bytes moved meanwhile.
    func meterTick() {
        if meter.fleetPeer == nil, !connection.fleetHops.isEmpty { connection.meterFleetPeer(self) }
        meter.flush(movedIn: bytesIn, movedOut: bytesOut)
    }
}

extension TCPMUXConnection {
    /// Named offered service `service`, whose backend is starting: counted open
    /// as a channel of form `tcpmux`, its connect time from now.
    func meterNamed(_ service: String) {
        meter.named(service: service, form: "tcpmux")
        backendConnectBegan = MonotonicClock.nanoseconds
    }

    /// Its backend is ready: the connect time.
    func meterAttached() {
        guard let began = backendConnectBegan, let (service, _) = meter.labels else { return }
        backendConnectBegan = nil
        DaemonMetrics.shared.backendConnect(service: service, nanoseconds: MonotonicClock.nanoseconds &- began, succeeded: true)
    }

    /// Its backend could not be reached (answered `-service not available`).
    func meterBackendUnavailable() {
        let metrics = DaemonMetrics.shared
        metrics.refused(.backendUnavailable)
        meter.refused = true
        guard let began = backendConnectBegan, let (service, _) = meter.labels else { return }
        backendConnectBegan = nil
        metrics.backendConnect(service: service, nanoseconds: MonotonicClock.nanoseconds &- began, succeeded: false)
    }

    /// The worker's quarter-second tick: bytes moved meanwhile.
    func meterTick() {
        meter.flush(movedIn: bytesIn, movedOut: bytesOut)
    }

    /// It ended for `reason`: counted in `fived_tcpmux_connections_total`, and,
    /// if it named an offered service, closed as that service's channel.
    func meterEnded(_ reason: TCPMUXEndReason) {
        let metrics = DaemonMetrics.shared
        metrics.counter(MetricCatalog.tcpmuxConnections, MetricLabels.outcome(reason, service: service)).increment()
        guard meter.labels != nil else { return }
        let channelReason: ChannelEndReason
        switch reason {
        case .relay(let why): channelReason = why
        case .stopping: channelReason = .stopping
        default: channelReason = .refused("\(reason)")
        }
        let elapsed = UInt64(max(0, MonotonicClock.now - startedAt)) * 1_000_000
        meter.closed(channelReason, nanoseconds: elapsed, movedIn: bytesIn, movedOut: bytesOut, formLabel: "tcpmux")
    }
}

extension Connection {
    /// The `service` label for `shown` (a channel's service as it logs it).
    func serviceLabel(_ shown: String) -> String {
        let config = worker.config.snapshot
        let publications = worker.publications
        return MetricLabels.service(
            shown, configured: { config.services[$0] != nil }, published: { publications.lookup($0) != nil })
    }

    /// A backend connect for channel `channelID` begins now.
    func backendConnectStarting(_ channelID: UInt64) {
        backendConnectStarts[channelID] = MonotonicClock.nanoseconds
    }

    /// A backend could not be reached for channel `channelID` (to `service`): a
    /// refusal, and a failed connect whose time is counted when one was started;
    /// `channel`, when it is open already, is answered with a refusal.
    func backendUnavailable(_ channelID: UInt64, service: String, on channel: ServiceChannel? = nil) {
        let metrics = DaemonMetrics.shared
        metrics.refused(.backendUnavailable)
        channel?.meter.refused = true
        if let began = backendConnectStarts.removeValue(forKey: channelID) {
            metrics.backendConnect(
                service: serviceLabel(service), nanoseconds: MonotonicClock.nanoseconds &- began, succeeded: false)
        }
    }

    /// A refusal by the access decision; on a session channel it also marks the
    /// channel's outcome `refused`.
    func countRefusal(_ refusal: OpenRefusal, on channel: ServiceChannel? = nil) {
        DaemonMetrics.shared.refused(refusal)
        channel?.meter.refused = true
    }

    /// `channel` is relayed through another fleet node, if its hop says so:
    /// its meter counts its bytes for that peer from now on. On the entry node
    /// a relayed call is two channels with the same hop, the caller's and the
    /// leg toward the owner (form `relay`); only the leg counts, once the owner
    /// accepted it.
    func meterFleetPeer(_ channel: ServiceChannel) {
        guard let hop = fleetHops[channel.id]?.hop, let me = worker.fleet?.me.value,
            let peer = MetricLabels.fleetPeer(hop: hop, me: me)
        else { return }
        let isLeg = channel.formLabel == "relay"
        guard peer.direction == "inbound" || isLeg else { return }
        channel.meter.relayed(through: peer.node, direction: peer.direction, reversed: isLeg)
    }

    /// A channel of this connection closed: counted, and for a channel relayed
    /// through another fleet node, counted for that peer too.
    func meterClosed(_ channel: ServiceChannel, reason: ChannelEndReason) {
        backendConnectStarts.removeValue(forKey: channel.id)
        if channel.meter.fleetPeer == nil, !fleetHops.isEmpty { meterFleetPeer(channel) }
        let elapsed = UInt64(max(0, MonotonicClock.now - channel.startedAt)) * 1_000_000
        channel.meter.closed(
            reason, nanoseconds: elapsed, movedIn: channel.bytesIn, movedOut: channel.bytesOut, formLabel: channel.formLabel)
        guard let peer = channel.meter.fleetPeer else { return }
        DaemonMetrics.shared.counter(MetricCatalog.fleetChannels, peer.node, peer.direction).increment()
    }

    /// The `method` label of `fived_authentications_total`.
    static func authenticationMethodLabel(_ method: SSHMessage.AuthMethod, certificate: Bool = false) -> String {
        switch method {
        case .publicKey: return certificate ? "certificate" : "publickey"
        case .none: return "none"
        case .password: return "password"
        case .hostBased: return "hostbased"
        case .keyboardInteractive: return "keyboard-interactive"
        case .gssapi: return "gssapi"
        case .unknown: return "unknown"
        }
    }
}

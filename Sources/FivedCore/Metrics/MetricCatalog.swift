/// Every metric fived exports, with its Prometheus type, help text, labels and
/// (for histograms) bucket bounds: the one list docs/observability.md mirrors
/// and the daemon's metrics factory reads its `# HELP` lines and buckets from.
///
/// Names follow Prometheus conventions: `fived_` prefix, base units (seconds,
/// bytes), `_total` for counters. Every label value comes from a bounded set
/// (`MetricLabels`) or from fived's own configuration (service names, worker
/// numbers, fleet node names), never from what a client sends.
public struct MetricDescription: Sendable, Equatable {
    /// The Prometheus metric type.
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    /// The metric name as exported (`fived_channels_total`).
    public let name: String
    public let kind: Kind
    /// The `# HELP` text.
    public let help: String
    /// The label names, in the order they are given.
    public let labels: [String]
    /// Upper bounds of a histogram's buckets, in the metric's unit (seconds); empty otherwise.
    public let buckets: [Double]

    public init(_ name: String, _ kind: Kind, _ help: String, labels: [String] = [], buckets: [Double] = []) {
        self.name = name
        self.kind = kind
        self.help = help
        self.labels = labels
        self.buckets = buckets
    }
}

/// The catalog (see `MetricDescription`).
public enum MetricCatalog {
    public static let connectionsOpen = MetricDescription(
        "fived_connections_open", .gauge, "SSH connections open now, authenticated or not.")
    public static let connections = MetricDescription(
        "fived_connections_total", .counter, "SSH connections ended, by how they ended.", labels: ["outcome"])
    public static let authentications = MetricDescription(
        "fived_authentications_total", .counter,
        "Authentication requests decided, by method and result (a public-key probe answered 'this key would do' is not counted).",
        labels: ["method", "result"])
    public static let startupsQueued = MetricDescription(
        "fived_startups_queued_total", .counter,
        "Connections that had to wait for a startup slot (max_startups, max_startups_per_source).")
    public static let startupsWaiting = MetricDescription(
        "fived_startups_waiting", .gauge, "Connections waiting for a startup slot now.")
    public static let startupsDropped = MetricDescription(
        "fived_startups_dropped_total", .counter, "Connections dropped before the SSH banner, by reason.", labels: ["reason"])
    public static let channelsOpen = MetricDescription(
        "fived_channels_open", .gauge, "Channels open now, by service and form.", labels: ["service", "form"])
    public static let channels = MetricDescription(
        "fived_channels_total", .counter, "Channels closed, by service, form and how they ended.",
        labels: ["service", "form", "outcome"])
    public static let channelBytes = MetricDescription(
        "fived_channel_bytes_total", .counter,
        "Bytes relayed on channels, by service and direction (in: client to service, out: service to client, stderr included).",
        labels: ["service", "direction"])
    public static let channelDuration = MetricDescription(
        "fived_channel_duration_seconds", .histogram, "How long channels were open, from open to close, by service.",
        labels: ["service"], buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400, 86400])
    public static let backendConnect = MetricDescription(
        "fived_backend_connect_seconds", .histogram,
        "Time to connect a channel's backend (TCP or Unix connect, exec start), by service and result.",
        labels: ["service", "result"],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
    public static let refusals = MetricDescription(
        "fived_channel_refusals_total", .counter, "Channel opens and service requests refused, by reason.", labels: ["reason"])
    public static let publishedNames = MetricDescription(
        "fived_published_names", .gauge, "Names published now with ssh -R NAME:1:... on this node.")
    public static let execProcesses = MetricDescription(
        "fived_exec_processes", .gauge, "Exec service processes running now (started and not yet reaped).")
    public static let loopLag = MetricDescription(
        "fived_worker_loop_lag_seconds", .histogram,
        "How long a job handed to a worker's event loop waited before the loop ran it (sampled every second), by worker.",
        labels: ["worker"], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5])
    public static let fleetChannels = MetricDescription(
        "fived_fleet_relayed_channels_total", .counter,
        "Channels relayed through another fleet node and closed, by peer node and direction (outbound: this node is the entry).",
        labels: ["peer", "direction"])
    public static let fleetBytes = MetricDescription(
        "fived_fleet_relayed_bytes_total", .counter,
        "Bytes of channels relayed through another fleet node, by peer node, channel direction (outbound, inbound) and byte direction (in, out).",
        labels: ["peer", "direction", "bytes"])
    public static let tcpmuxConnections = MetricDescription(
        "fived_tcpmux_connections_total", .counter,
        "Connections of the plain TCPMUX listener (and TCPMUX on the SSH port) ended, by how they ended.", labels: ["outcome"])
    public static let metricsScrapes = MetricDescription(
        "fived_metrics_scrapes_total", .counter, "Scrapes of this endpoint answered, by where they came (channel, listener).",
        labels: ["via"])

    /// Every metric, in the order docs/observability.md lists them.
    public static let all: [MetricDescription] = [
        connectionsOpen, connections, authentications, startupsQueued, startupsWaiting, startupsDropped, channelsOpen, channels,
        channelBytes, channelDuration, backendConnect, refusals, publishedNames, execProcesses, loopLag, fleetChannels,
        fleetBytes, tcpmuxConnections, metricsScrapes,
    ]

    /// The description of `name`, if fived exports it.
    public static func named(_ name: String) -> MetricDescription? {
        all.first { $0.name == name }
    }
}

/// The bounded label values fived gives its metrics, from its own types.
public enum MetricLabels {
    /// `outcome` of `fived_connections_total`.
    public static func outcome(_ reason: ConnectionEndReason) -> String {
        switch reason {
        case .clientDisconnected: return "client_disconnected"
        case .disconnectedBeforeAuthentication: return "disconnected_before_authentication"
        case .loginGraceExceeded: return "login_grace_exceeded"
        case .tooManyAuthenticationFailures: return "too_many_authentication_failures"
        case .stopping: return "stopping"
        case .protocolViolation: return "protocol_violation"
        case .keepaliveTimeout: return "keepalive_timeout"
        case .publicationTakenOver: return "publication_taken_over"
        case .setupFailed: return "setup_failed"
        }
    }

    /// `outcome` of `fived_channels_total`.
    public static func outcome(_ reason: ChannelEndReason) -> String {
        switch reason {
        case .closed: return "closed"
        case .peerClosed: return "client_closed"
        case .peerClosedUndelivered: return "client_closed_undelivered"
        case .channelGone: return "channel_gone"
        case .peerReadError, .sshReadError: return "client_read_error"
        case .peerWriteError, .sshWriteError: return "client_write_error"
        case .localReadError: return "backend_read_error"
        case .localWriteError: return "backend_write_error"
        case .localConnectFailed, .refused: return "refused"
        case .connectionEnded: return "connection_ended"
        case .protocolViolation: return "protocol_violation"
        case .stopping: return "stopping"
        }
    }

    /// `outcome` of `fived_tcpmux_connections_total` for a connection that ended
    /// for `reason` after naming `service` (as it logs it: `help`, `-` for none).
    public static func outcome(_ reason: TCPMUXEndReason, service: String) -> String {
        switch reason {
        case .refused: return service == "help" ? "help" : "refused"
        case .nameTooLong: return "name_too_long"
        case .closedBeforeName: return "closed_before_name"
        case .errorBeforeName: return "client_error_before_name"
        case .nameTimeout: return "name_timeout"
        case .stopping: return "stopping"
        case .relay: return "served"
        }
    }

    /// `reason` of `fived_channel_refusals_total` for a refused access decision.
    public static func refusal(_ refusal: OpenRefusal) -> String {
        switch refusal {
        case .noServiceName: return "no_service_name"
        case .invalidName: return "invalid_name"
        case .invalidForcedCommand: return "invalid_forced_command"
        case .forwardingDisabled: return "forwarding_disabled"
        case .notInPermitOpen: return "not_in_permitopen"
        case .unknownService: return "unknown_service"
        case .notAllowed: return "not_allowed"
        case .statusNotAllowed: return "status_not_allowed"
        case .metricsNotAllowed: return "metrics_not_allowed"
        case .certificateForbidsForwarding: return "certificate_forbids_forwarding"
        case .forcedCommandsDiffer: return "forced_commands_differ"
        }
    }

    /// The other `reason`s of `fived_channel_refusals_total`: limits and channel types.
    public enum Refusal: String, Sendable, CaseIterable {
        case backendUnavailable = "backend_unavailable"
        case maxChannelsPerConnection = "max_channels_per_connection"
        case maxChannelsPerKey = "max_channels_per_key"
        case maxPacketTooSmall = "max_packet_too_small"
        case unsupportedChannelType = "unsupported_channel_type"
    }

    /// `service` label for a channel: the name itself for a configured service
    /// or a built-in, `(published)` for a name published with `ssh -R` (the
    /// publisher picks it), `(fleet)` for a name of another node, `(none)` for
    /// a channel that never named one, and `(other)` for anything else, so a
    /// client can never add a label value by what it asks for.
    public static func service(_ shown: String, configured: (ServiceName) -> Bool, published: (ServiceName) -> Bool) -> String {
        if shown == "-" { return "(none)" }  // what a channel that named nothing logs
        guard let name = ServiceName(shown) else { return "(other)" }
        if name.isReserved || configured(name) { return name.value }
        if published(name) { return "(published)" }
        if name.value.contains(".") { return "(fleet)" }
        return "(other)"
    }

    /// `form` label for a channel: its form as logs give it, limited to the known ones.
    public static func form(_ label: String) -> String {
        switch label {
        case "direct-tcpip", "exec", "subsystem", "shell", "session", "forwarded-tcpip", "relay", "tcpmux": return label
        default: return "other"
        }
    }
}

extension MetricLabels {
    /// `peer` and `direction` of the fleet metrics for a channel whose node hop
    /// (as its log lines give it) is `hop`, `ENTRY->OWNER`, seen from node `me`:
    /// `outbound` when this node is the entry, `inbound` when it is the owner.
    public static func fleetPeer(hop: String, me: String) -> (node: String, direction: String)? {
        let nodes = hop.components(separatedBy: "->")
        guard nodes.count == 2, nodes[0] != nodes[1] else { return nil }
        if nodes[0] == me { return (nodes[1], "outbound") }
        if nodes[1] == me { return (nodes[0], "inbound") }
        return nil
    }
}

/// Why a channel open was refused, for the log line; never shown to the client
/// (which only sees `AccessPolicy.refusalText`).
public enum OpenRefusal: Sendable, Equatable, CustomStringConvertible {
    /// An `exec` or `subsystem` request carried no name.
    case noServiceName
    /// The requested name is not a valid service name (printable form).
    case invalidName(String)
    /// The key's `command="..."` is not a valid service name (printable form).
    case invalidForcedCommand(String)
    /// The key's line has `restrict` or `no-port-forwarding` (and no later
    /// `port-forwarding`), which deny every open but a forced command.
    case forwardingDisabled
    /// The key's `permitopen` entries do not include this name (and port, for
    /// direct-tcpip).
    case notInPermitOpen(ServiceName, port: UInt32?)
    /// No service has this name.
    case unknownService(ServiceName)
    /// The service's `allow` list does not admit the caller.
    case notAllowed(ServiceName)
    /// The status table's allow list does not admit the caller.
    case statusNotAllowed
    /// The Prometheus endpoint's allow list does not admit the caller.
    case metricsNotAllowed
    /// The caller's certificate lacks the `permit-port-forwarding` extension,
    /// which every open but a forced one needs.
    case certificateForbidsForwarding
    /// The key's `command="..."` and its certificate's `force-command` differ.
    case forcedCommandsDiffer(line: String, certificate: String)

    public var description: String {
        switch self {
        case .noServiceName: return "no service name in the request"
        case .invalidName(let raw): return "invalid service name '\(raw)'"
        case .invalidForcedCommand(let raw): return "the key's command=\"\(raw)\" is not a valid service name"
        case .forwardingDisabled: return "the key's options (restrict or no-port-forwarding) deny opening services"
        case .notInPermitOpen(let name, let port):
            return "\(name)\(port.map { ":\($0)" } ?? "") is not in the key's permitopen list"
        case .unknownService(let name): return "no service named \(name)"
        case .notAllowed(let name): return "the allow list of \(name) does not admit the key"
        case .statusNotAllowed: return "the status allow list does not admit the key"
        case .metricsNotAllowed: return "the metrics allow list does not admit the key"
        case .certificateForbidsForwarding:
            return "the certificate has no permit-port-forwarding extension, which opening services needs"
        case .forcedCommandsDiffer(let line, let cert):
            return "the key's command=\"\(ServiceName.printable(line))\" and the certificate's force-command \"\(ServiceName.printable(cert))\" differ"
        }
    }
}

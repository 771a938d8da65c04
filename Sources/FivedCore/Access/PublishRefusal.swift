/// Why a request to publish a name (`tcpip-forward`) was refused, for the log.
public enum PublishRefusal: Sendable, Equatable, CustomStringConvertible {
    /// The bind address is not a valid service name (printable form).
    case invalidName(String)
    /// `help` and `status` cannot be published.
    case reservedName(ServiceName)
    /// The key's line has `restrict` or `no-port-forwarding`.
    case forwardingDisabled
    /// The key's line has no `permitlisten` entry matching the name.
    case notInPermitListen(ServiceName)
    /// The caller's certificate lacks the `permit-port-forwarding` extension.
    case certificateForbidsForwarding

    public var description: String {
        switch self {
        case .invalidName(let raw): return "invalid service name '\(raw)'"
        case .reservedName(let name): return "\(name) is reserved"
        case .forwardingDisabled: return "the key's options (restrict or no-port-forwarding) deny publishing"
        case .notInPermitListen(let name): return "\(name) is not in the key's permitlisten list"
        case .certificateForbidsForwarding:
            return "the certificate has no permit-port-forwarding extension, which publishing needs"
        }
    }
}

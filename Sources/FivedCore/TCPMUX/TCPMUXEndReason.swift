/// Why a connection on the plain TCPMUX listener ended, as its `tcpmux closed` log line gives it.
public enum TCPMUXEndReason: Sendable, Equatable, CustomStringConvertible {
    /// The name was refused (`-` reply), or HELP was answered.
    case refused
    /// The name line was longer than RFC 1078's 64 bytes (fived's limit).
    case nameTooLong
    /// The client closed before sending a whole name line.
    case closedBeforeName
    /// Reading the name failed.
    case errorBeforeName(String)
    /// No name within the time limit.
    case nameTimeout
    /// fived is shutting down.
    case stopping
    /// The relay ended, for this reason.
    case relay(ChannelEndReason)

    public var description: String {
        switch self {
        case .refused: return "refused"
        case .nameTooLong: return "name line too long"
        case .closedBeforeName: return "client closed before a name"
        case .errorBeforeName(let why): return "client error before a name: \(why)"
        case .nameTimeout: return "no name within 10 s"
        case .stopping: return "fived stopping"
        case .relay(let reason): return reason.description
        }
    }
}

/// Why a connection ended, for its channels' log lines and its own.
public enum ConnectionEndReason: Sendable, Equatable, CustomStringConvertible {
    /// The client closed the TCP connection (or it broke) after authenticating.
    case clientDisconnected
    /// The client went away before authenticating.
    case disconnectedBeforeAuthentication
    /// `login_grace_seconds` passed without authentication.
    case loginGraceExceeded
    /// Six failed authentication attempts (sshd's MaxAuthTries).
    case tooManyAuthenticationFailures
    /// fived is shutting down (SIGTERM/SIGINT).
    case stopping
    /// The peer broke the SSH connection protocol.
    case protocolViolation(String)
    /// The client answered none of `count` keepalives, `interval` seconds apart
    /// (`client_alive_interval_seconds`, `client_alive_count_max`).
    case keepaliveTimeout(count: Int, interval: Int)
    /// A new connection with the same key published `name` while this one did
    /// not answer a keepalive probe: it was presumed dead.
    case publicationTakenOver(name: String)
    /// The connection could not be set up.
    case setupFailed(String)

    public var description: String {
        switch self {
        case .clientDisconnected: return "client disconnected"
        case .disconnectedBeforeAuthentication: return "disconnected before authentication"
        case .loginGraceExceeded: return "login grace time exceeded"
        case .tooManyAuthenticationFailures: return "too many authentication failures"
        case .stopping: return "fived stopping"
        case .protocolViolation(let what): return "protocol violation: \(what)"
        case .keepaliveTimeout(let count, let interval):
            return "client not answering keepalives (\(count) unanswered, \(interval) s apart)"
        case .publicationTakenOver(let name):
            return "\(name) taken over by a new connection with the same key; this one did not answer a keepalive"
        case .setupFailed(let why): return "connection setup failed: \(why)"
        }
    }
}

/// Why a channel ended, as its `channel closed` log line gives it.
public enum ChannelEndReason: Sendable, Equatable, CustomStringConvertible {
    /// Both sides finished normally.
    case closed
    /// The peer closed the channel (after everything it sent was delivered).
    case peerClosed
    /// The peer closed while the local end was still taking its last bytes, and
    /// the drain deadline passed.
    case peerClosedUndelivered
    /// libssh no longer knows the channel open (the transport is going away).
    case channelGone
    /// Reading from the peer's socket failed (the plain TCPMUX listener).
    case peerReadError(String)
    /// Writing to the peer's socket failed (the plain TCPMUX listener).
    case peerWriteError(String)
    /// Reading the peer's data from libssh failed.
    case sshReadError
    /// Writing to the channel failed.
    case sshWriteError
    /// Reading from the local end (backend, local socket, stdin) failed.
    case localReadError(String)
    /// Writing to the local end failed with something other than "it stopped reading".
    case localWriteError(String)
    /// Connecting the local end failed (fived-connect `-R`: the local target).
    case localConnectFailed(String)
    /// The peer refused the channel open (fived-connect).
    case refused(String)
    /// The connection carrying the channel ended.
    case connectionEnded(ConnectionEndReason)
    /// The peer broke the channel protocol (data after EOF or CLOSE, a second CLOSE, ...).
    case protocolViolation(ChannelStateMachine.Violation)
    /// The program stops (fived-connect: a signal or the end of the run).
    case stopping

    public var description: String {
        switch self {
        case .closed: return "closed"
        case .peerClosed: return "client closed"
        case .peerClosedUndelivered: return "client closed; the backend did not take the rest in time"
        case .channelGone: return "channel gone"
        case .peerReadError(let why): return "client read error: \(why)"
        case .peerWriteError(let why): return "client write error: \(why)"
        case .sshReadError: return "ssh read error"
        case .sshWriteError: return "ssh write error"
        case .localReadError(let why): return "backend read error: \(why)"
        case .localWriteError(let why): return "backend write error: \(why)"
        case .localConnectFailed(let why): return "connect to the local target failed: \(why)"
        case .refused(let why): return "refused: \(why)"
        case .connectionEnded(let reason): return reason.description
        case .protocolViolation(let violation): return "protocol violation: \(violation)"
        case .stopping: return "stopping"
        }
    }
}

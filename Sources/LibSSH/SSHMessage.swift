import CLibSSH

/// A libssh message lent for the duration of `SSHServerSessionDelegate.session(_:received:)`.
/// libssh frees it when the callback returns, so every decision is made inside.
public struct SSHMessage: ~Copyable {
    let message: ssh_message
    let session: SSHSession

    /// What kind of request this is.
    public enum Kind: Equatable {
        case channelOpen(ChannelType)
        case globalRequest(GlobalRequestType)
        case channelRequest
        case authentication
        case service
        case other(Int32)
    }

    /// Channel types libssh 0.10.6 parses; everything else is `.unknown` with no fields readable.
    public enum ChannelType: Equatable {
        case session, directTCPIP, forwardedTCPIP, x11, authAgent, unknown
    }

    /// Global requests libssh 0.10.6 parses.
    public enum GlobalRequestType: Equatable {
        case tcpipForward, cancelTCPIPForward, keepalive, unknown
    }

    public var kind: Kind {
        let type = ssh_message_type(message)
        switch type {
        case Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue):
            switch UInt32(ssh_message_subtype(message)) {
            case SSH_CHANNEL_SESSION.rawValue: return .channelOpen(.session)
            case SSH_CHANNEL_DIRECT_TCPIP.rawValue: return .channelOpen(.directTCPIP)
            case SSH_CHANNEL_FORWARDED_TCPIP.rawValue: return .channelOpen(.forwardedTCPIP)
            case SSH_CHANNEL_X11.rawValue: return .channelOpen(.x11)
            case SSH_CHANNEL_AUTH_AGENT.rawValue: return .channelOpen(.authAgent)
            default: return .channelOpen(.unknown)
            }
        case Int32(SSH_REQUEST_GLOBAL.rawValue):
            switch UInt32(ssh_message_subtype(message)) {
            case SSH_GLOBAL_REQUEST_TCPIP_FORWARD.rawValue: return .globalRequest(.tcpipForward)
            case SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD.rawValue: return .globalRequest(.cancelTCPIPForward)
            case SSH_GLOBAL_REQUEST_KEEPALIVE.rawValue: return .globalRequest(.keepalive)
            default: return .globalRequest(.unknown)
            }
        case Int32(SSH_REQUEST_CHANNEL.rawValue): return .channelRequest
        case Int32(SSH_REQUEST_AUTH.rawValue): return .authentication
        case Int32(SSH_REQUEST_SERVICE.rawValue): return .service
        default: return .other(type)
        }
    }

    /// For direct-tcpip opens: the destination host field (fived's service name) and port.
    public var openDestination: (host: String, port: UInt32)? {
        guard let host = ssh_message_channel_request_open_destination(message) else { return nil }
        return (String(cString: host), UInt32(truncatingIfNeeded: ssh_message_channel_request_open_destination_port(message)))
    }

    /// For direct-tcpip opens: the originator address and port the client reported.
    public var openOriginator: (host: String, port: UInt32)? {
        guard let host = ssh_message_channel_request_open_originator(message) else { return nil }
        return (String(cString: host), UInt32(truncatingIfNeeded: ssh_message_channel_request_open_originator_port(message)))
    }

    /// For tcpip-forward requests: the bind address (fived: the name to publish) and port.
    public var globalRequestAddress: (address: String, port: UInt32)? {
        guard let a = ssh_message_global_request_address(message) else { return nil }
        return (String(cString: a), UInt32(truncatingIfNeeded: ssh_message_global_request_port(message)))
    }

    /// Accepts a channel open; returns the new channel (owned by the caller).
    public func acceptChannel() -> SSHChannel? {
        guard let raw = ssh_message_channel_request_open_reply_accept(message) else { return nil }
        return SSHChannel(owning: raw, session: session)
    }

    /// Replies with libssh's default refusal (open failure, request failure, auth
    /// failure). libssh 0.10.6 sends channel-open failures as code 1
    /// (administratively prohibited) with an empty description (server.c:666);
    /// its public API has no way to send a reason text.
    public func refuse() {
        _ = ssh_message_reply_default(message)
    }

    /// Replies success to a global request (port is echoed for tcpip-forward).
    public func acceptGlobalRequest(boundPort: UInt16) {
        _ = ssh_message_global_request_reply_success(message, boundPort)
    }
}

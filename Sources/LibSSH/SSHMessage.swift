import CLibSSH

/// Whether libssh has checked the signature of a public-key authentication request.
public enum PublicKeyAuthState: Sendable, Equatable {
    /// The client asks whether the key would be acceptable (no signature yet).
    case probe
    /// libssh verified the signature with the presented key.
    case verified
    /// The signature did not verify.
    case wrong
}

/// One request the peer sent that libssh queued for fived (see `SSHSession`),
/// owned: it is freed when the last reference goes, without any reply. Answer it
/// once (`accept...`, `reply...`, `refuse`); later answers do nothing. Touched by
/// the session's thread only.
public final class SSHMessage {
    let message: ssh_message
    /// The session the request came on.
    public let session: SSHSession
    /// What the peer asked.
    public let kind: Kind
    /// True once answered.
    public private(set) var isAnswered = false

    /// The authentication methods of RFC 4252 §7–9 and RFC 4256.
    public enum AuthMethod: Sendable, Equatable {
        case none, password, publicKey, hostBased, keyboardInteractive, gssapi, unknown
    }

    /// SSH_MSG_USERAUTH_REQUEST.
    public struct Authentication: Sendable, Equatable {
        public let user: String
        public let method: AuthMethod
        /// For public-key requests: probe or signed.
        public let state: PublicKeyAuthState?
    }

    /// Channel types libssh 0.10.6 parses; everything else is `.unknown` with no fields readable.
    public enum ChannelType: Sendable, Equatable {
        case session, directTCPIP, forwardedTCPIP, x11, authAgent, unknown
    }

    /// SSH_MSG_CHANNEL_OPEN.
    public struct ChannelOpen: Sendable, Equatable {
        public let type: ChannelType
        /// direct-tcpip: the host field (fived's service name) and port; forwarded-tcpip: the listen address and port.
        public let destination: (host: String, port: UInt32)?
        /// The originator address and port the peer reported.
        public let originator: (host: String, port: UInt32)?
        /// The peer's initial window and maximum packet size, nil when libssh's layout could not be verified.
        public let window: UInt32?
        public let maxPacket: UInt32?

        public static func == (a: ChannelOpen, b: ChannelOpen) -> Bool {
            a.type == b.type && a.destination?.host == b.destination?.host && a.destination?.port == b.destination?.port
                && a.originator?.host == b.originator?.host && a.originator?.port == b.originator?.port
                && a.window == b.window && a.maxPacket == b.maxPacket
        }
    }

    /// pty-req (RFC 4254 §6.2).
    public struct PseudoTerminal: Sendable, Equatable {
        public let term: String
        public let columns: UInt32
        public let rows: UInt32
        public let widthPixels: UInt32
        public let heightPixels: UInt32
        /// The encoded terminal modes (RFC 4254 §8), empty when unknown.
        public let modes: [UInt8]
    }

    /// The channel requests libssh 0.10.6 passes on; it answers `keepalive@openssh.com`
    /// and `auth-agent-req@openssh.com` itself, and delivers `signal` through
    /// the channel's callback (channels.c:766) without a message.
    public enum ChannelRequestType: Sendable, Equatable {
        case pty(PseudoTerminal)
        case windowChange(columns: UInt32, rows: UInt32, widthPixels: UInt32, heightPixels: UInt32)
        case shell
        case exec(String)
        case subsystem(String)
        case env(name: String, value: String)
        case x11
        /// A request libssh does not parse; its name is not kept (messages.c: SSH_CHANNEL_REQUEST_UNKNOWN).
        case unknown
    }

    /// SSH_MSG_CHANNEL_REQUEST.
    public struct ChannelRequest: Sendable, Equatable {
        public let type: ChannelRequestType
        /// Whether the peer asked for a reply; nil when libssh's layout could not be verified.
        public let wantsReply: Bool?
    }

    /// Global requests libssh 0.10.6 passes on (it answers keepalive@openssh.com
    /// itself and refuses unknown ones without a message, messages.c:1589).
    public enum GlobalRequest: Sendable, Equatable {
        case tcpipForward(address: String, port: UInt32)
        case cancelTCPIPForward(address: String, port: UInt32)
        case keepalive
        case unknown
    }

    /// What the peer asked.
    public enum Kind: Sendable, Equatable {
        case authentication(Authentication)
        case service(String)
        case channelOpen(ChannelOpen)
        case channelRequest(ChannelRequest)
        case globalRequest(GlobalRequest)
        case other(Int32)
    }

    init(owning message: ssh_message, session: SSHSession) {
        self.message = message
        self.session = session
        self.kind = Self.read(message, session: session)
    }

    deinit {
        ssh_message_free(message)
    }

    /// For channel requests: the channel it is for, if the owner still holds it
    /// (a request for a channel already released has none and must not be answered).
    public var channel: SSHChannel? {
        guard case .channelRequest = kind else { return nil }
        return session.channel(for: ssh_message_channel_request_channel(message))
    }

    /// For public-key authentication: the presented key's blob (SSH wire encoding).
    public var authenticationKeyBlob: [UInt8]? {
        guard case .authentication = kind, let key = fived_message_auth_pubkey(message) else { return nil }
        return BorrowedSSHKey(key: key).publicBlob()
    }

    // MARK: Answers

    /// Public-key probe: "this key would be acceptable" (SSH_MSG_USERAUTH_PK_OK).
    public func acceptPublicKeyProbe() {
        guard !isAnswered else { return }
        isAnswered = true
        _ = ssh_message_auth_reply_pk_ok_simple(message)
    }

    /// Authentication succeeded: the user is logged in.
    public func acceptAuthentication() {
        guard !isAnswered else { return }
        isAnswered = true
        _ = ssh_message_auth_reply_success(message, 0)
    }

    /// The default refusal: authentication failure (offering public key only),
    /// channel open failure (code 1, "administratively prohibited", with an empty
    /// description: server.c:666, the public API cannot send a text), request
    /// failure when a reply was asked for, service accept for a service request.
    public func refuse() {
        guard !isAnswered else { return }
        isAnswered = true
        if case .authentication = kind {
            _ = ssh_message_auth_set_methods(message, Int32(SSH_AUTH_METHOD_PUBLICKEY))
        }
        _ = ssh_message_reply_default(message)
    }

    /// Accepts a service request ("ssh-userauth").
    public func acceptService() {
        guard !isAnswered else { return }
        isAnswered = true
        _ = ssh_message_service_reply_success(message)
    }

    /// Accepts a channel open (sends the confirmation); returns the new channel, owned by the caller.
    public func acceptChannelOpen() -> SSHChannel? {
        guard !isAnswered, case .channelOpen = kind else { return nil }
        isAnswered = true
        guard let raw = ssh_message_channel_request_open_reply_accept(message) else { return nil }
        return SSHChannel(owning: raw, session: session)
    }

    /// Channel request: SSH_MSG_CHANNEL_SUCCESS if a reply was asked for.
    public func acceptChannelRequest() {
        guard !isAnswered else { return }
        isAnswered = true
        _ = ssh_message_channel_request_reply_success(message)
    }

    /// Global request: SSH_MSG_REQUEST_SUCCESS if a reply was asked for; for a
    /// tcpip-forward that asked for port 0, the reply carries `boundPort`.
    public func acceptGlobalRequest(boundPort: UInt16) {
        guard !isAnswered else { return }
        isAnswered = true
        _ = ssh_message_global_request_reply_success(message, boundPort)
    }

    // MARK: Reading

    private static func string(_ raw: UnsafePointer<CChar>?) -> String? {
        raw.map { String(cString: $0) }
    }

    private static func read(_ message: ssh_message, session: SSHSession) -> Kind {
        let type = ssh_message_type(message)
        let subtype = ssh_message_subtype(message)
        switch type {
        case Int32(SSH_REQUEST_AUTH.rawValue):
            let user = string(ssh_message_auth_user(message)) ?? ""
            let method: AuthMethod
            switch subtype {
            case Int32(SSH_AUTH_METHOD_NONE): method = .none
            case Int32(SSH_AUTH_METHOD_PASSWORD): method = .password
            case Int32(SSH_AUTH_METHOD_PUBLICKEY): method = .publicKey
            case Int32(SSH_AUTH_METHOD_HOSTBASED): method = .hostBased
            case Int32(SSH_AUTH_METHOD_INTERACTIVE): method = .keyboardInteractive
            case Int32(SSH_AUTH_METHOD_GSSAPI_MIC): method = .gssapi
            default: method = .unknown
            }
            var state: PublicKeyAuthState?
            if method == .publicKey {
                switch fived_message_auth_publickey_state(message) {
                case Int32(SSH_PUBLICKEY_STATE_NONE.rawValue): state = .probe
                case Int32(SSH_PUBLICKEY_STATE_VALID.rawValue): state = .verified
                default: state = .wrong
                }
            }
            return .authentication(Authentication(user: user, method: method, state: state))
        case Int32(SSH_REQUEST_SERVICE.rawValue):
            return .service(string(ssh_message_service_service(message)) ?? "")
        case Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue):
            let channelType: ChannelType
            switch UInt32(subtype) {
            case SSH_CHANNEL_SESSION.rawValue: channelType = .session
            case SSH_CHANNEL_DIRECT_TCPIP.rawValue: channelType = .directTCPIP
            case SSH_CHANNEL_FORWARDED_TCPIP.rawValue: channelType = .forwardedTCPIP
            case SSH_CHANNEL_X11.rawValue: channelType = .x11
            case SSH_CHANNEL_AUTH_AGENT.rawValue: channelType = .authAgent
            default: channelType = .unknown
            }
            let destination = string(ssh_message_channel_request_open_destination(message)).map {
                ($0, UInt32(truncatingIfNeeded: ssh_message_channel_request_open_destination_port(message)))
            }
            let originator = string(ssh_message_channel_request_open_originator(message)).map {
                ($0, UInt32(truncatingIfNeeded: ssh_message_channel_request_open_originator_port(message)))
            }
            var window: UInt32 = 0
            var maxPacket: UInt32 = 0
            let known = session.withPointer { fived_message_open_parameters(message, $0, &window, &maxPacket) } == 1
            return .channelOpen(
                ChannelOpen(
                    type: channelType, destination: destination, originator: originator,
                    window: known ? window : nil, maxPacket: known ? maxPacket : nil))
        case Int32(SSH_REQUEST_CHANNEL.rawValue):
            var want: Int32 = 0
            let known = session.withPointer { fived_message_request_wants_reply(message, $0, &want) } == 1
            let requestType: ChannelRequestType
            switch UInt32(subtype) {
            case SSH_CHANNEL_REQUEST_PTY.rawValue:
                var modes: [UInt8] = []
                if let raw = session.withPointer({ fived_message_pty_modes(message, $0) }),
                    let data = ssh_string_data(raw)
                {
                    let count = min(ssh_string_len(raw), 65536)
                    modes = Array(UnsafeRawBufferPointer(start: data, count: count))
                }
                requestType = .pty(
                    PseudoTerminal(
                        term: string(fived_message_pty_term(message)) ?? "",
                        columns: UInt32(truncatingIfNeeded: fived_message_pty_width(message)),
                        rows: UInt32(truncatingIfNeeded: fived_message_pty_height(message)),
                        widthPixels: UInt32(truncatingIfNeeded: fived_message_pty_pxwidth(message)),
                        heightPixels: UInt32(truncatingIfNeeded: fived_message_pty_pxheight(message)),
                        modes: modes))
            case SSH_CHANNEL_REQUEST_WINDOW_CHANGE.rawValue:
                requestType = .windowChange(
                    columns: UInt32(truncatingIfNeeded: fived_message_pty_width(message)),
                    rows: UInt32(truncatingIfNeeded: fived_message_pty_height(message)),
                    widthPixels: UInt32(truncatingIfNeeded: fived_message_pty_pxwidth(message)),
                    heightPixels: UInt32(truncatingIfNeeded: fived_message_pty_pxheight(message)))
            case SSH_CHANNEL_REQUEST_SHELL.rawValue:
                requestType = .shell
            case SSH_CHANNEL_REQUEST_EXEC.rawValue:
                requestType = .exec(string(ssh_message_channel_request_command(message)) ?? "")
            case SSH_CHANNEL_REQUEST_SUBSYSTEM.rawValue:
                requestType = .subsystem(string(ssh_message_channel_request_subsystem(message)) ?? "")
            case SSH_CHANNEL_REQUEST_ENV.rawValue:
                requestType = .env(
                    name: string(ssh_message_channel_request_env_name(message)) ?? "",
                    value: string(ssh_message_channel_request_env_value(message)) ?? "")
            case SSH_CHANNEL_REQUEST_X11.rawValue:
                requestType = .x11
            default:
                requestType = .unknown
            }
            return .channelRequest(ChannelRequest(type: requestType, wantsReply: known ? want != 0 : nil))
        case Int32(SSH_REQUEST_GLOBAL.rawValue):
            let address = string(ssh_message_global_request_address(message)) ?? ""
            let port = UInt32(truncatingIfNeeded: ssh_message_global_request_port(message))
            switch UInt32(subtype) {
            case SSH_GLOBAL_REQUEST_TCPIP_FORWARD.rawValue: return .globalRequest(.tcpipForward(address: address, port: port))
            case SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD.rawValue:
                return .globalRequest(.cancelTCPIPForward(address: address, port: port))
            case SSH_GLOBAL_REQUEST_KEEPALIVE.rawValue: return .globalRequest(.keepalive)
            default: return .globalRequest(.unknown)
            }
        default:
            return .other(type)
        }
    }
}

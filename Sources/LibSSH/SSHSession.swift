import CLibSSH

/// Whether libssh has checked the signature of a public-key authentication request.
public enum PublicKeyAuthState: Sendable {
    /// The client asks whether the key would be acceptable (no signature yet).
    case probe
    /// libssh verified the signature; accepting logs the user in.
    case verified
}

/// The decisions a server session asks of its owner. Called on the session's
/// thread, from inside libssh's event processing.
public protocol SSHServerSessionDelegate: AnyObject {
    /// Public-key authentication; return true to accept (a probe: "key acceptable").
    func session(_ session: SSHSession, authenticate user: String, key: BorrowedSSHKey, state: PublicKeyAuthState) -> Bool
    /// A `session` channel open; return the channel to accept, nil to refuse.
    func sessionOpensSessionChannel(_ session: SSHSession) -> SSHChannel?
    /// Every other message (direct-tcpip opens, global requests, unsupported requests).
    /// Reply inside (the message dies when this returns) and return true, or return
    /// false to have libssh send its default refusal.
    func session(_ session: SSHSession, received message: borrowing SSHMessage) -> Bool
}

/// One SSH session (server side), owning its `ssh_session` and the callback
/// tables libssh calls into. Touched by one thread only.
public final class SSHSession: @unchecked Sendable {
    let session: ssh_session
    private var serverCallbacks: UnsafeMutablePointer<ssh_server_callbacks_struct>?
    /// The delegate receives every callback; held weakly so the owner controls lifetime.
    public weak var delegate: SSHServerSessionDelegate?

    init(owning session: ssh_session) {
        self.session = session
    }

    deinit {
        // ssh_free also frees every channel still attached; channel wrappers hold
        // a strong reference to their session, so none outlives this.
        ssh_free(session)
        serverCallbacks?.deallocate()
    }

    /// Lends the raw handle for the duration of `body`.
    public func withPointer<T>(_ body: (ssh_session) throws -> T) rethrows -> T {
        try body(session)
    }

    /// The connected socket.
    public var fileDescriptor: Int32 { ssh_get_fd(session) }

    /// Installs the server callbacks and the message callback, offers public-key
    /// authentication only, and switches the session to non-blocking operation.
    public func prepareServer(delegate: SSHServerSessionDelegate) throws(LibSSHError) {
        self.delegate = delegate
        let cb = UnsafeMutablePointer<ssh_server_callbacks_struct>.allocate(capacity: 1)
        cb.initialize(to: ssh_server_callbacks_struct())
        fived_server_callbacks_init(cb)
        cb.pointee.userdata = Unmanaged.passUnretained(self).toOpaque()
        cb.pointee.auth_pubkey_function = { _, user, key, state, userdata in
            guard let userdata, let key else { return Int32(SSH_AUTH_DENIED.rawValue) }
            let me = Unmanaged<SSHSession>.fromOpaque(userdata).takeUnretainedValue()
            let name = user.map { String(cString: $0) } ?? ""
            let phase: PublicKeyAuthState
            switch Int32(state) {
            case Int32(SSH_PUBLICKEY_STATE_NONE.rawValue): phase = .probe
            case Int32(SSH_PUBLICKEY_STATE_VALID.rawValue): phase = .verified
            default: return Int32(SSH_AUTH_DENIED.rawValue)  // wrong signature: never reaches here, deny anyway
            }
            let ok = me.delegate?.session(me, authenticate: name, key: BorrowedSSHKey(key: key), state: phase) ?? false
            return ok ? Int32(SSH_AUTH_SUCCESS.rawValue) : Int32(SSH_AUTH_DENIED.rawValue)
        }
        cb.pointee.channel_open_request_session_function = { _, userdata in
            guard let userdata else { return nil }
            let me = Unmanaged<SSHSession>.fromOpaque(userdata).takeUnretainedValue()
            guard let channel = me.delegate?.sessionOpensSessionChannel(me) else { return nil }
            return channel.channel
        }
        serverCallbacks = cb
        guard ssh_set_server_callbacks(session, cb) == SSH_OK else {
            throw LibSSHError(.option, "could not install server callbacks: \(lastError(UnsafeMutableRawPointer(session)))")
        }
        ssh_set_message_callback(session, { _, message, userdata in
            guard let userdata, let message else { return 1 }
            let me = Unmanaged<SSHSession>.fromOpaque(userdata).takeUnretainedValue()
            let wrapped = SSHMessage(message: message, session: me)
            let handled = me.delegate?.session(me, received: wrapped) ?? false
            return handled ? 0 : 1
        }, Unmanaged.passUnretained(self).toOpaque())
        ssh_set_auth_methods(session, Int32(SSH_AUTH_METHOD_PUBLICKEY))
        ssh_set_blocking(session, 0)
    }

    /// Advances the key exchange; true when it has finished. Returns false while
    /// more packets are needed (the event loop will drive it).
    public func handleKeyExchange() throws(LibSSHError) -> Bool {
        let rc = ssh_handle_key_exchange(session)
        if rc == SSH_OK { return true }
        if rc == SSH_AGAIN { return false }
        throw LibSSHError(.keyExchange, lastError(UnsafeMutableRawPointer(session)))
    }

    /// True while the transport is up.
    public var isConnected: Bool {
        let status = ssh_get_status(session)
        if status & (SSH_CLOSED | SSH_CLOSED_ERROR) != 0 { return false }
        return ssh_is_connected(session) != 0
    }

    /// Hands libssh's queued output to the socket without waiting; true when
    /// nothing is left queued. Costs no system call when nothing is queued.
    ///
    /// Not `ssh_get_poll_flags() & SSH_WRITE_PENDING`: libssh asks for POLLOUT
    /// after every send (socket.c, ssh_socket_unbuffered_write), so that flag is
    /// set even when its buffer is empty, and a pump that trusted it would send one
    /// packet per poll round.
    public func flushOutput() -> Bool {
        ssh_blocking_flush(session, 0) == SSH_OK
    }

    /// libssh's last error text for this session.
    public var lastErrorText: String { lastError(UnsafeMutableRawPointer(session)) }

    /// Sends SSH_MSG_DISCONNECT (best effort) and closes the socket.
    public func disconnect() {
        ssh_disconnect(session)
    }
}

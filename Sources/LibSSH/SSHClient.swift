import CLibSSH

/// What libssh's `ssh_session_is_known_server` says about the server's key.
/// libssh 0.10.6 skips `@cert-authority` and `@revoked` lines (knownhosts.c:272-276)
/// and ignores `!` negation in host fields (knownhosts.c:683-710); fived-connect
/// decides with its own reading (`HostKeyCheck`) and shows this one with -v.
public enum SSHHostKeyVerdict: Sendable, Equatable {
    /// Recorded and identical.
    case known
    /// No entry for this host (or no known_hosts file yet).
    case unknown
    /// An entry of the same key type with a different key: possible attack.
    case changed
    /// Only entries of other key types: treated like `changed`.
    case otherType
}

/// The result of one authentication attempt.
public enum SSHAuthResult: Sendable, Equatable {
    case success
    /// The server refused (or this method is not available).
    case denied
    /// Accepted, but the server wants another method as well.
    case partial
    /// The attempt could not be made; the text says why.
    case error(String)
}

/// A client `ssh_session`: options, connect, host key check, authentication,
/// then channels. The underlying session is an `SSHSession`, so `SSHEvent`,
/// `SSHChannel` and `SSHMessage` work on it as on a server session. Touched by
/// one thread only.
public final class SSHClient {
    /// The session; channels opened here hold it strongly.
    public let session: SSHSession

    /// A new, unconnected session that ignores libssh's own reading of
    /// ~/.ssh/config and /etc/ssh/ssh_config (fived-connect resolves options itself).
    public init() throws(LibSSHError) {
        guard let raw = ssh_new() else {
            throw LibSSHError(.allocation, "could not allocate an SSH session")
        }
        session = SSHSession(owning: raw)
        var no: CBool = false
        guard ssh_options_set(raw, SSH_OPTIONS_PROCESS_CONFIG, &no) == SSH_OK else {
            throw LibSSHError(.option, "could not disable libssh's config processing: \(session.lastErrorText)")
        }
    }

    private var raw: ssh_session { session.session }

    private func setString(_ option: ssh_options_e, _ value: String, _ what: String) throws(LibSSHError) {
        guard ssh_options_set(raw, option, value) == SSH_OK else {
            throw LibSSHError(.option, "could not set \(what) '\(value)': \(session.lastErrorText)")
        }
    }

    /// The host to connect to (a name or an address, no user part).
    public func setHost(_ host: String) throws(LibSSHError) { try setString(SSH_OPTIONS_HOST, host, "host") }

    /// The user name to authenticate as.
    public func setUser(_ user: String) throws(LibSSHError) { try setString(SSH_OPTIONS_USER, user, "user") }

    /// The known_hosts file read by `checkServerKey` and written by `recordServerKey`.
    public func setKnownHostsFile(_ path: String) throws(LibSSHError) {
        try setString(SSH_OPTIONS_KNOWNHOSTS, path, "known_hosts file")
    }

    /// The system-wide known_hosts file `checkServerKey` also reads (libssh's
    /// default: /etc/ssh/ssh_known_hosts); never written.
    public func setGlobalKnownHostsFile(_ path: String) throws(LibSSHError) {
        try setString(SSH_OPTIONS_GLOBAL_KNOWNHOSTS, path, "global known_hosts file")
    }

    /// The directory libssh substitutes for `%d`/`~/.ssh` (it would otherwise ask
    /// the password database, ignoring $HOME).
    public func setSSHDirectory(_ path: String) throws(LibSSHError) {
        try setString(SSH_OPTIONS_SSH_DIR, path, "ssh directory")
    }

    public func setPort(_ port: UInt16) throws(LibSSHError) {
        var value = UInt32(port)
        guard ssh_options_set(raw, SSH_OPTIONS_PORT, &value) == SSH_OK else {
            throw LibSSHError(.option, "could not set port \(port): \(session.lastErrorText)")
        }
    }

    /// Timeout of the TCP connect and of every blocking call, in seconds.
    public func setTimeout(seconds: Int) throws(LibSSHError) {
        var value = seconds  // C long
        guard ssh_options_set(raw, SSH_OPTIONS_TIMEOUT, &value) == SSH_OK else {
            throw LibSSHError(.option, "could not set timeout: \(session.lastErrorText)")
        }
    }

    /// Blocking (the default) or non-blocking operation.
    public func setBlocking(_ blocking: Bool) {
        ssh_set_blocking(raw, blocking ? 1 : 0)
    }

    /// Connects and runs the key exchange (blocking).
    public func connect() throws(LibSSHError) {
        let rc = ssh_connect(raw)
        guard rc == SSH_OK else {
            throw LibSSHError(.connect, session.lastErrorText)
        }
    }

    /// The connected socket.
    public var fileDescriptor: Int32 { ssh_get_fd(raw) }

    /// True while the transport is up.
    public var isConnected: Bool { session.isConnected }

    // MARK: Host key

    /// The server's host key as `(type, SHA256:..., blob)`, or nil before the key exchange.
    public func serverKey() -> (type: String, fingerprint: String, blob: [UInt8])? {
        var key: ssh_key?
        guard ssh_get_server_publickey(raw, &key) == SSH_OK, let key else { return nil }
        defer { ssh_key_free(key) }
        guard let blob = BorrowedSSHKey(key: key).publicBlob() else { return nil }
        var hash: UnsafeMutablePointer<UInt8>?
        var length = 0
        guard ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &length) == SSH_OK, let digest = hash else { return nil }
        defer { ssh_clean_pubkey_hash(&hash) }
        guard let text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, digest, length) else { return nil }
        defer { ssh_string_free_char(text) }
        let type = ssh_key_type_to_char(ssh_key_type(key)).map { String(cString: $0) } ?? "unknown"
        return (type, String(cString: text), blob)
    }

    /// Looks the server's key up in the known_hosts file.
    public func checkServerKey() throws(LibSSHError) -> SSHHostKeyVerdict {
        switch ssh_session_is_known_server(raw) {
        case SSH_KNOWN_HOSTS_OK: return .known
        case SSH_KNOWN_HOSTS_CHANGED: return .changed
        case SSH_KNOWN_HOSTS_OTHER: return .otherType
        case SSH_KNOWN_HOSTS_UNKNOWN, SSH_KNOWN_HOSTS_NOT_FOUND: return .unknown
        default:
            throw LibSSHError(.hostKey, "could not check the known_hosts file: \(session.lastErrorText)")
        }
    }

    /// Appends the server's key to the known_hosts file.
    public func recordServerKey() throws(LibSSHError) {
        guard ssh_session_update_known_hosts(raw) == SSH_OK else {
            throw LibSSHError(.hostKey, "could not write the known_hosts file: \(session.lastErrorText)")
        }
    }

    // MARK: Authentication

    private func authResult(_ rc: Int32) -> SSHAuthResult {
        switch rc {
        case Int32(SSH_AUTH_SUCCESS.rawValue): return .success
        case Int32(SSH_AUTH_DENIED.rawValue): return .denied
        case Int32(SSH_AUTH_PARTIAL.rawValue): return .partial
        default: return .error(session.lastErrorText)
        }
    }

    /// The "none" method: asks the server for its methods (libssh's RSA signature
    /// negotiation depends on it having been called first).
    public func authenticateNone() -> SSHAuthResult {
        authResult(ssh_userauth_none(raw, nil))
    }

    /// Tries every key the agent at `SSH_AUTH_SOCK` holds.
    public func authenticateWithAgent() -> SSHAuthResult {
        authResult(ssh_userauth_agent(raw, nil))
    }

    /// Tries one private key, or a private key with a certificate attached
    /// (`SSHKey.attach(certificate:)`): `ssh_userauth_publickey` then sends the
    /// certificate's algorithm name and blob and signs with the key (auth.c:654-701).
    public func authenticate(with key: SSHKey) -> SSHAuthResult {
        authResult(key.withPointer { ssh_userauth_publickey(raw, nil, $0) })
    }

    // MARK: Requests and channels

    /// A new channel on this session, not yet opened.
    public func makeChannel() -> SSHChannel? {
        SSHChannel.make(on: session)
    }

    /// The next request the server sent (forwarded-tcpip opens for names this
    /// client published), or nil; see `SSHSession.nextMessage`.
    public func nextMessage() -> SSHMessage? {
        session.nextMessage()
    }

    /// Sends `tcpip-forward` for `address` and `port` and waits for the answer.
    /// Returns false while a non-blocking session still waits (call again with
    /// the same arguments). A refusal throws with `.channel`.
    public func listenForward(address: String, port: Int32) throws(LibSSHError) -> Bool {
        let rc = ssh_channel_listen_forward(raw, address, port, nil)
        if rc == SSH_OK { return true }
        if rc == SSH_AGAIN { return false }
        throw LibSSHError(.channel, session.lastErrorText)
    }

    /// Sends SSH_MSG_IGNORE: traffic that needs no answer, so that a dead peer
    /// shows up as a TCP timeout (global-request keepalives would collide with
    /// libssh's single pending global request).
    public func sendIgnore() {
        _ = ssh_send_ignore(raw, "")
    }

    /// Sends SSH_MSG_DISCONNECT (best effort) and closes the socket.
    public func disconnect() {
        session.disconnect()
    }

}

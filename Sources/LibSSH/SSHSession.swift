import CLibSSH

/// One SSH session, server or client side, owning its `ssh_session`. Touched by
/// one thread only.
///
/// fived installs no libssh server callbacks and no message callback: every
/// request libssh does not answer itself (authentication, channel opens,
/// channel requests, tcpip-forward) is queued by libssh (messages.c,
/// `ssh_message_queue`) and taken with `nextMessage()`. The owner answers each
/// when it has decided, which may be much later (after a backend connect), or
/// not at all (a request on a channel it already closed).
public final class SSHSession: @unchecked Sendable {
    let session: ssh_session
    /// The channels of this session by their libssh handle, so that a channel
    /// request names the wrapper it belongs to; weak, the owner controls lifetime.
    private var channels: [UnsafeMutableRawPointer: WeakChannel] = [:]
    /// libssh's packet counter for this session (`ssh_set_counters`, raw
    /// counter): bumped for every packet parsed, whoever read the socket.
    private let counters: UnsafeMutablePointer<ssh_counter_struct>

    private struct WeakChannel {
        weak var channel: SSHChannel?
    }

    init(owning session: ssh_session) {
        self.session = session
        counters = .allocate(capacity: 1)
        counters.initialize(to: ssh_counter_struct())
        ssh_set_counters(session, nil, counters)
    }

    deinit {
        // ssh_free also frees every channel still attached; channel wrappers hold
        // a strong reference to their session, so none outlives this.
        ssh_free(session)
        counters.deallocate()
    }

    /// Packets received and parsed so far (libssh counts them in
    /// `ssh_packet_socket_callback`, packet.c). Input that libssh reads inside a
    /// call made for another purpose (a keepalive's reply read during
    /// `ssh_send_keepalive`, say) shows here, where no socket event does.
    public var packetsReceived: UInt64 { counters.pointee.in_packets }

    /// Payload bytes of the packets received and parsed so far (the same counter).
    public var bytesReceived: UInt64 { counters.pointee.in_bytes }

    /// Lends the raw handle for the duration of `body`.
    public func withPointer<T>(_ body: (ssh_session) throws -> T) rethrows -> T {
        try body(session)
    }

    /// The connected socket.
    public var fileDescriptor: Int32 { ssh_get_fd(session) }

    /// Offers public-key authentication only and switches the session to
    /// non-blocking operation. No callbacks: requests queue for `nextMessage`.
    public func prepareServer() {
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

    /// The next queued request, or nil when none is waiting. When the queue is
    /// empty libssh reads the socket once without waiting (`ssh_message_get` on
    /// a non-blocking session), which may run channel callbacks.
    public func nextMessage() -> SSHMessage? {
        guard let raw = ssh_message_get(session) else { return nil }
        return SSHMessage(owning: raw, session: self)
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

    // MARK: Input read by the owner (CLibSSH/shim.h, "Feeding libssh's packet reader")

    /// Moves the input libssh has read from the socket but not parsed yet (part
    /// of a packet) into `buffer`: its length, or nil when libssh's layout is
    /// not the verified 0.10.6 one, the session is not connected, or the input
    /// does not fit (then nothing moved, and libssh keeps reading for itself).
    public func takeUnparsedInput(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let base = buffer.baseAddress else { return nil }
        let n = fived_socket_take_input(session, base, buffer.count)
        return n >= 0 ? n : nil
    }

    /// Runs libssh's packet reader over bytes the owner read from this
    /// session's socket (after those `takeUnparsedInput` gave), as libssh runs
    /// it over a read of its own (socket.c `ssh_socket_pollcallback`): packets
    /// are decrypted and dispatched, channel callbacks run. Returns the bytes
    /// consumed from the start (the rest is part of a packet: offer it again
    /// with more), or nil when the reader cannot be used (nothing was done).
    public func parseInput(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress else { return 0 }
        let n = fived_socket_feed(session, base, bytes.count)
        return n >= 0 ? n : nil
    }

    /// Gives bytes offered but not consumed back to libssh as its buffered
    /// input, for its own next read to append to. False if that failed: the
    /// session's input is then out of order and the session must end.
    public func returnUnparsedInput(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        return fived_socket_return_input(session, base, bytes.count) == 1
    }

    /// Sends a `keepalive@openssh.com` global request with want-reply (as sshd's
    /// ClientAliveInterval does); any packet the peer sends afterwards proves it alive.
    public func sendKeepalive() {
        _ = ssh_send_keepalive(session)
    }

    /// The peer's version string ("SSH-2.0-OpenSSH_9.2p1 Debian-2"), once exchanged.
    public var peerBanner: String {
        let raw = ssh_get_clientbanner(session)
        return raw.map { String(cString: $0) } ?? ""
    }

    /// Set when the peer sent a channel message for a channel that does not exist
    /// (or one too short to name a channel): libssh drops such a message and only
    /// records this error (channels.c `channel_from_msg`), where sshd disconnects
    /// the peer ("Received data for nonexistent channel"). The error text, or nil.
    public var channelProtocolError: String? {
        guard ssh_get_error_code(UnsafeMutableRawPointer(session)) == Int32(SSH_FATAL.rawValue) else { return nil }
        let text = lastErrorText
        return text.hasPrefix("Server specified invalid channel") || text.hasPrefix("Getting channel from message") ? text : nil
    }

    /// libssh's last error text for this session.
    public var lastErrorText: String { lastError(UnsafeMutableRawPointer(session)) }

    /// Sends SSH_MSG_DISCONNECT (best effort) and closes the socket.
    public func disconnect() {
        ssh_disconnect(session)
    }

    // MARK: Channel registry

    func register(_ channel: SSHChannel) {
        channels[UnsafeMutableRawPointer(channel.channel)] = WeakChannel(channel: channel)
    }

    func unregister(_ channel: SSHChannel) {
        channels.removeValue(forKey: UnsafeMutableRawPointer(channel.channel))
    }

    /// The live wrapper of a libssh channel handle, if the owner still holds it.
    func channel(for raw: ssh_channel?) -> SSHChannel? {
        guard let raw else { return nil }
        return channels[UnsafeMutableRawPointer(raw)]?.channel
    }
}

import CLibSSH

/// What a channel passes to its owner, on the session's thread, from inside
/// libssh's packet processing: record what happened and return; do not call
/// back into libssh from here except to send on this channel's backend.
public protocol SSHChannelDelegate: AnyObject {
    /// Data from the peer (extended data when `isStderr`). Return how many bytes
    /// were consumed; libssh keeps the rest buffered, and its window stops reopening.
    func channel(_ channel: SSHChannel, received data: UnsafeRawBufferPointer, isStderr: Bool) -> Int
    /// The peer sent EOF.
    func channelReceivedEOF(_ channel: SSHChannel)
    /// The peer sent CLOSE.
    func channelReceivedClose(_ channel: SSHChannel)
    /// The peer sent a `signal` request (RFC 4254 §6.9); `name` without "SIG".
    /// libssh 0.10.6 handles it itself and sends no reply, even if one was asked for.
    func channel(_ channel: SSHChannel, receivedSignal name: String)
}

/// One SSH channel, owning its `ssh_channel` and callback table.
public final class SSHChannel: @unchecked Sendable {
    let channel: ssh_channel
    /// The session this channel belongs to; held strongly so the session (which
    /// frees its channels) outlives every channel wrapper.
    public let session: SSHSession
    private let callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    private var freed = false
    public weak var delegate: SSHChannelDelegate?

    init(owning channel: ssh_channel, session: SSHSession) {
        self.channel = channel
        self.session = session
        callbacks = .allocate(capacity: 1)
        callbacks.initialize(to: ssh_channel_callbacks_struct())
        fived_channel_callbacks_init(callbacks)
        session.register(self)
    }

    deinit {
        release()
        callbacks.deallocate()
    }

    /// A new channel on `session`, not yet opened (client side, or a forwarded-tcpip open toward a publisher).
    public static func make(on session: SSHSession) -> SSHChannel? {
        guard let raw = ssh_channel_new(session.session) else { return nil }
        return SSHChannel(owning: raw, session: session)
    }

    /// The result of one step of opening a channel.
    public enum OpenProgress: Sendable, Equatable {
        case open, pending, failed
    }

    /// Starts or continues a `forwarded-tcpip` open toward a peer that asked for
    /// `tcpip-forward` (publishing). Non-blocking: call again while `.pending`.
    public func openReverseForward(address: String, port: UInt32, originator: String, originatorPort: UInt32) -> OpenProgress {
        let rc = ssh_channel_open_reverse_forward(channel, address, Int32(bitPattern: port), originator, Int32(bitPattern: originatorPort))
        if rc == SSH_OK { return .open }
        if rc == SSH_AGAIN { return .pending }
        return .failed
    }

    /// Starts or continues a `direct-tcpip` open to `host`:`port` (fived: the
    /// service name and 1). Non-blocking sessions: `.pending` until answered;
    /// a refusal throws with the server's reason.
    public func openForward(host: String, port: Int32, originatorHost: String, originatorPort: Int32) throws(LibSSHError) -> OpenProgress {
        try progress(ssh_channel_open_forward(channel, host, port, originatorHost, originatorPort))
    }

    /// Starts or continues a `session` channel open (client side).
    public func openSession() throws(LibSSHError) -> OpenProgress {
        try progress(ssh_channel_open_session(channel))
    }

    /// Sends an `exec` request (client side); `.pending` on a non-blocking
    /// session until the reply arrives; a refusal throws.
    public func requestExec(_ command: String) throws(LibSSHError) -> OpenProgress {
        try progress(ssh_channel_request_exec(channel, command))
    }

    /// Sends a `subsystem` request (client side), as `requestExec`.
    public func requestSubsystem(_ name: String) throws(LibSSHError) -> OpenProgress {
        try progress(ssh_channel_request_subsystem(channel, name))
    }

    private func progress(_ rc: Int32) throws(LibSSHError) -> OpenProgress {
        if rc == SSH_OK { return .open }
        if rc == SSH_AGAIN { return .pending }
        throw LibSSHError(.channel, session.lastErrorText)
    }

    /// Detaches the callbacks and frees the libssh channel now (0.10.6 can call
    /// callbacks after ssh_channel_free unless they are removed first). A channel
    /// the peer has not closed yet stays known to libssh until its CLOSE arrives,
    /// with no callbacks; requests for it are no longer matched to this wrapper.
    public func release() {
        guard !freed else { return }
        freed = true
        session.unregister(self)
        ssh_remove_channel_callbacks(channel, callbacks)
        ssh_channel_free(channel)
    }

    /// Installs the callbacks that route to `delegate`. Channel requests other
    /// than `signal` arrive as session messages (no server callbacks are set).
    public func install(delegate: SSHChannelDelegate) {
        self.delegate = delegate
        let me = Unmanaged.passUnretained(self).toOpaque()
        callbacks.pointee.userdata = me
        callbacks.pointee.channel_data_function = { _, _, data, len, isStderr, userdata in
            guard let userdata, let data else { return 0 }
            let me = Unmanaged<SSHChannel>.fromOpaque(userdata).takeUnretainedValue()
            guard let delegate = me.delegate else { return 0 }
            let consumed = delegate.channel(me, received: UnsafeRawBufferPointer(start: data, count: Int(len)), isStderr: isStderr != 0)
            return Int32(clamping: consumed)
        }
        callbacks.pointee.channel_eof_function = { _, _, userdata in
            guard let userdata else { return }
            let me = Unmanaged<SSHChannel>.fromOpaque(userdata).takeUnretainedValue()
            me.delegate?.channelReceivedEOF(me)
        }
        callbacks.pointee.channel_close_function = { _, _, userdata in
            guard let userdata else { return }
            let me = Unmanaged<SSHChannel>.fromOpaque(userdata).takeUnretainedValue()
            me.delegate?.channelReceivedClose(me)
        }
        callbacks.pointee.channel_signal_function = { _, _, signal, userdata in
            guard let userdata, let signal else { return }
            let me = Unmanaged<SSHChannel>.fromOpaque(userdata).takeUnretainedValue()
            me.delegate?.channel(me, receivedSignal: String(cString: signal))
        }
        ssh_set_channel_callbacks(channel, callbacks)
    }

    /// Bytes the peer will accept now (the remote window).
    public var windowSize: Int { Int(ssh_channel_window_size(channel)) }

    /// The peer's maximum packet size, nil when libssh's layout could not be verified.
    public var remoteMaxPacket: UInt32? {
        var value: UInt32 = 0
        return fived_channel_remote_max_packet(channel, session.session, &value) == 1 ? value : nil
    }

    /// True once the channel is open and not closed.
    public var isOpen: Bool { ssh_channel_is_open(channel) != 0 }

    /// True once the peer sent EOF and libssh's buffer is drained.
    public var isEOF: Bool { ssh_channel_is_eof(channel) != 0 }

    /// Writes up to the window; returns bytes taken (may be fewer, or 0 while re-keying).
    public func write(_ data: UnsafeRawBufferPointer, stderr: Bool = false) throws(LibSSHError) -> Int {
        guard let base = data.baseAddress, !data.isEmpty else { return 0 }
        let rc =
            stderr
            ? ssh_channel_write_stderr(channel, base, UInt32(data.count))
            : ssh_channel_write(channel, base, UInt32(data.count))
        if rc < 0 {
            throw LibSSHError(.channel, "channel write failed: \(session.lastErrorText)")
        }
        return Int(rc)
    }

    /// Reads peer data libssh buffered but the data callback did not consume.
    /// Returns 0 when nothing is buffered, nil at EOF (EOF received and drained).
    public func readBuffered(into buffer: UnsafeMutableRawBufferPointer) throws(LibSSHError) -> Int? {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        let rc = ssh_channel_read_nonblocking(channel, base, UInt32(buffer.count), 0)
        if rc == SSH_EOF { return nil }
        if rc < 0 { throw LibSSHError(.channel, "channel read failed: \(session.lastErrorText)") }
        return Int(rc)
    }

    /// Sends exit-status (session channels).
    public func sendExitStatus(_ status: Int32) {
        _ = ssh_channel_request_send_exit_status(channel, status)
    }

    /// Sends exit-signal (session channels), with the signal name without "SIG".
    public func sendExitSignal(_ name: String) {
        _ = ssh_channel_request_send_exit_signal(channel, name, 0, "", "")
    }

    /// Sends EOF. Returns false if libssh could not queue it.
    @discardableResult
    public func sendEOF() -> Bool {
        let rc = ssh_channel_send_eof(channel)
        return rc == SSH_OK || rc == SSH_AGAIN
    }

    /// Sends CLOSE (libssh never answers the peer's close by itself), preceded
    /// by EOF if that was not sent yet.
    public func close() {
        _ = ssh_channel_close(channel)
    }
}

import CLibSSH

/// The requests a channel passes to its owner, on the session's thread.
public protocol SSHChannelDelegate: AnyObject {
    /// Data from the client. Return how many bytes were consumed; libssh keeps the
    /// rest buffered (and stops reopening the window).
    func channel(_ channel: SSHChannel, received data: UnsafeRawBufferPointer, isStderr: Bool) -> Int
    /// The client sent EOF.
    func channelReceivedEOF(_ channel: SSHChannel)
    /// The client closed the channel.
    func channelReceivedClose(_ channel: SSHChannel)
    /// An `exec` request; true to accept.
    func channel(_ channel: SSHChannel, exec command: String) -> Bool
    /// A `subsystem` request; true to accept.
    func channel(_ channel: SSHChannel, subsystem name: String) -> Bool
    /// A `shell` request; true to accept.
    func channelShell(_ channel: SSHChannel) -> Bool
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
    }

    /// Creates a fresh channel for a `session` channel open (accepted by returning it).
    public static func makeSessionChannel(on session: SSHSession) -> SSHChannel? {
        guard let raw = ssh_channel_new(session.session) else { return nil }
        return SSHChannel(owning: raw, session: session)
    }

    /// The result of one step of opening a channel toward the client.
    public enum OpenProgress: Sendable {
        case open, pending, failed
    }

    /// Starts a `forwarded-tcpip` open toward a client that asked for
    /// `tcpip-forward` (publishing). The session is non-blocking, so the open
    /// completes over later polls: call `continueReverseForward` until it is not pending.
    public static func openReverseForward(on session: SSHSession, address: String, port: UInt32,
                                          originator: String, originatorPort: UInt32) -> (SSHChannel, OpenProgress)? {
        guard let raw = ssh_channel_new(session.session) else { return nil }
        let channel = SSHChannel(owning: raw, session: session)
        channel.reverseForward = (address, port, originator, originatorPort)
        return (channel, channel.continueReverseForward())
    }

    private var reverseForward: (address: String, port: UInt32, originator: String, originatorPort: UInt32)?

    /// Advances a pending `forwarded-tcpip` open.
    public func continueReverseForward() -> OpenProgress {
        guard let f = reverseForward else { return .failed }
        let rc = ssh_channel_open_reverse_forward(channel, f.address, Int32(bitPattern: f.port), f.originator, Int32(bitPattern: f.originatorPort))
        if rc == SSH_OK { return .open }
        if rc == SSH_AGAIN { return .pending }
        return .failed
    }

    deinit {
        release()
        callbacks.deallocate()
    }

    /// Detaches the callbacks and frees the libssh channel now (0.10.6 can call
    /// callbacks after ssh_channel_free unless they are removed first).
    public func release() {
        guard !freed else { return }
        freed = true
        ssh_remove_channel_callbacks(channel, callbacks)
        ssh_channel_free(channel)
    }

    /// Installs the callbacks that route to `delegate`. pty, env, x11 and agent
    /// requests are refused (pty and env here; x11 and agent fall through to the
    /// session's message callback, which refuses them).
    public func install(delegate: SSHChannelDelegate) {
        self.delegate = delegate
        let me = Unmanaged.passUnretained(self).toOpaque()
        callbacks.pointee.userdata = me
        callbacks.pointee.channel_data_function = { _, _, data, len, isStderr, userdata in
            guard let userdata, let data else { return 0 }
            let me = Unmanaged<SSHChannel>.fromOpaque(userdata).takeUnretainedValue()
            guard let delegate = me.delegate else { return Int32(len) }
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
        callbacks.pointee.channel_exec_request_function = { _, _, command, userdata in
            guard let userdata, let command else { return 1 }
            let me = Unmanaged<SSHChannel>.fromOpaque(userdata).takeUnretainedValue()
            return me.delegate?.channel(me, exec: String(cString: command)) == true ? 0 : 1
        }
        callbacks.pointee.channel_subsystem_request_function = { _, _, name, userdata in
            guard let userdata, let name else { return 1 }
            let me = Unmanaged<SSHChannel>.fromOpaque(userdata).takeUnretainedValue()
            return me.delegate?.channel(me, subsystem: String(cString: name)) == true ? 0 : 1
        }
        callbacks.pointee.channel_shell_request_function = { _, _, userdata in
            guard let userdata else { return 1 }
            let me = Unmanaged<SSHChannel>.fromOpaque(userdata).takeUnretainedValue()
            return me.delegate?.channelShell(me) == true ? 0 : 1
        }
        // Declined: fived never allocates a terminal or imports the client's environment.
        callbacks.pointee.channel_pty_request_function = { _, _, _, _, _, _, _, _ in -1 }
        callbacks.pointee.channel_env_request_function = { _, _, _, _, _ in 1 }
        callbacks.pointee.channel_pty_window_change_function = { _, _, _, _, _, _, _ in 0 }
        ssh_set_channel_callbacks(channel, callbacks)
    }

    /// Bytes the client will accept now (the remote window).
    public var windowSize: Int { Int(ssh_channel_window_size(channel)) }

    /// True once the channel is open and not closed.
    public var isOpen: Bool { ssh_channel_is_open(channel) != 0 }

    /// True once the client sent EOF and libssh's buffer is drained.
    public var isEOF: Bool { ssh_channel_is_eof(channel) != 0 }

    /// Writes up to the window; returns bytes taken (may be fewer, or 0 while re-keying).
    public func write(_ data: UnsafeRawBufferPointer, stderr: Bool = false) throws(LibSSHError) -> Int {
        guard let base = data.baseAddress, !data.isEmpty else { return 0 }
        let rc = stderr
            ? ssh_channel_write_stderr(channel, base, UInt32(data.count))
            : ssh_channel_write(channel, base, UInt32(data.count))
        if rc < 0 {
            throw LibSSHError(.channel, "channel write failed: \(session.lastErrorText)")
        }
        return Int(rc)
    }

    /// Reads client data libssh buffered but the data callback did not consume.
    /// Returns 0 when nothing is buffered, nil at EOF.
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

    /// Sends CLOSE (libssh never answers the client's close by itself).
    public func close() {
        _ = ssh_channel_close(channel)
    }
}

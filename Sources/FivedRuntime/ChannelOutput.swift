import FivedCore
import LibSSH

/// Everything fived sends on one SSH channel goes through here: data, extended
/// data, EOF, exit status, request replies and CLOSE. After `close()` every
/// send is refused, so nothing can be written on a channel after its CLOSE
/// (RFC 4254 §5.3; PuTTY treats a reply to a closed channel as fatal) — the one
/// guard for every path: the relay's writes, replies, EOF and exit reports.
/// Reading libssh's buffer goes through here too, because a read reopens the
/// peer's window (a WINDOW_ADJUST is a send).
public final class ChannelOutput {
    public let channel: SSHChannel
    /// True once CLOSE was sent (or the channel given up).
    public private(set) var isClosed = false
    /// The channel's data stream, as a relay sink.
    public private(set) lazy var data = ChannelSink(output: self, stderr: false)
    /// The channel's extended data (stderr, type 1), as a relay sink.
    public private(set) lazy var extendedData = ChannelSink(output: self, stderr: true)
    /// What the peer sent that libssh buffered, as a relay source.
    public private(set) lazy var received = ChannelSource(output: self)

    public init(channel: SSHChannel) {
        self.channel = channel
    }

    /// Sends exit-status or exit-signal (RFC 4254 §6.10).
    public func sendExit(_ report: ExitReport) {
        guard !isClosed else { return }
        switch report {
        case .status(let code): channel.sendExitStatus(code)
        case .signal(let name): channel.sendExitSignal(name)
        }
    }

    /// Sends CHANNEL_EOF.
    public func sendEOF() {
        guard !isClosed else { return }
        channel.sendEOF()
    }

    /// Answers a channel request (SUCCESS or FAILURE, if the peer asked for a reply).
    public func reply(_ message: SSHMessage, success: Bool) {
        guard !isClosed else { return }
        if success { message.acceptChannelRequest() } else { message.refuse() }
    }

    /// Sends CHANNEL_CLOSE (with EOF first if it was not sent); nothing is sent after it.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        channel.close()
    }

    /// Marks the channel closed without sending anything (its transport is gone).
    public func abandon() {
        isClosed = true
    }
}

/// An SSH channel's data or extended data as a relay sink: at most the peer's
/// window per write; nothing once CLOSE was sent.
public final class ChannelSink: RelaySink {
    unowned let output: ChannelOutput
    let stderr: Bool

    init(output: ChannelOutput, stderr: Bool) {
        self.output = output
        self.stderr = stderr
    }

    public var room: Int { output.isClosed ? 0 : output.channel.windowSize }

    public func write(_ bytes: UnsafeRawBufferPointer) -> RelayWrite {
        guard !output.isClosed else { return .closed }
        do {
            return .bytes(try output.channel.write(bytes, stderr: stderr))
        } catch {
            return .failed("ssh write error")
        }
    }
}

/// What the peer sent on an SSH channel and libssh buffered (the data callback
/// did not take it), as a relay source. Nothing is read once CLOSE was sent.
public final class ChannelSource: RelaySource {
    unowned let output: ChannelOutput

    init(output: ChannelOutput) {
        self.output = output
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> RelayRead {
        guard !output.isClosed else { return .wouldBlock }
        do {
            guard let n = try output.channel.readBuffered(into: buffer) else { return .end }
            return n == 0 ? .wouldBlock : .bytes(n)
        } catch {
            return .failed("ssh read error")
        }
    }
}

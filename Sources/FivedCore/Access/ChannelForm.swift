/// How a client asked for a service (SPEC.md, "Channels: how a client names a
/// service"); the raw values are the SSH protocol's own names.
public enum ChannelForm: String, Sendable, CaseIterable {
    /// A `direct-tcpip` channel: the name is the host field (`ssh -W NAME:1`).
    case directTCPIP = "direct-tcpip"
    /// A session channel's `subsystem` request (`ssh -s host NAME`).
    case subsystem
    /// A session channel's `exec` request (`ssh host NAME`).
    case exec
    /// A session channel's `shell` request (`ssh host`): no name.
    case shell

    /// True for the forms that arrive on a session channel, which a forced
    /// command (`command="..."`) redirects.
    public var isSession: Bool { self != .directTCPIP }
}

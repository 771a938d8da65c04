/// What a connection to an SSH listener that also answers TCPMUX
/// (`tcpmux_on_ssh_port = true`) speaks, judged from the first bytes its client
/// sent, or from its silence.
///
/// - RFC 4253 §4.2: an SSH client's first bytes are its identification string,
///   `SSH-protoversion-softwareversion`, with nothing before it (only the server
///   may send other lines first). `SSH-` is case-sensitive there, as libssh and
///   OpenSSH compare it.
/// - RFC 1078: a TCPMUX client's first bytes are a service name (or `HELP`) and CRLF.
///   Service names may hold `-` and compare without case, so a name line can
///   begin with `ssh-`; only the exact uppercase `SSH-` counts as SSH, so such a
///   name still reaches TCPMUX unless the client sends it as `SSH-...`.
/// - Some SSH clients send nothing until they have read the server's
///   identification string (`ssh-keyscan`, PuTTY when SSH-1 is allowed): after
///   `silenceMilliseconds` without a byte, the connection is SSH.
public enum SharedPortOpening: Sendable, Equatable {
    /// The client speaks SSH: libssh takes the connection, first bytes unread.
    case ssh
    /// The client speaks TCPMUX: the plain listener's code reads the name line.
    case tcpmux
    /// Nothing yet, or a beginning of `SSH-` (`S`, `SS`, `SSH`): wait for more bytes or for the silence limit.
    case undecided

    /// The first bytes of every SSH client's identification string.
    public static let sshPrefix: [UInt8] = Array("SSH-".utf8)

    /// Bytes worth looking at: enough to tell `SSH-` from anything else.
    public static let bytesNeeded = sshPrefix.count

    /// How long a client may send nothing before it is taken for an SSH client
    /// waiting for the server's identification string. TCPMUX clients send their
    /// name line as soon as they are connected, so it normally arrives right
    /// behind the connection itself; one second leaves room for a lost segment's
    /// retransmission (Linux resends after 200 ms at the least).
    public static let silenceMilliseconds: Int64 = 1000

    /// Judges the bytes the client has sent so far (`firstBytes`, possibly more than
    /// `bytesNeeded`); `silenceOver` says that `silenceMilliseconds` have passed,
    /// after which nothing is left undecided.
    public init(firstBytes: some Collection<UInt8>, silenceOver: Bool) {
        let head = Array(firstBytes.prefix(Self.bytesNeeded))
        if head.count == Self.bytesNeeded {
            self = head == Self.sshPrefix ? .ssh : .tcpmux
        } else if head != Array(Self.sshPrefix.prefix(head.count)) {
            self = .tcpmux  // already differs from `SSH-`
        } else {
            self = silenceOver ? .ssh : .undecided
        }
    }
}

/// Who is opening a channel: the authenticated SSH user and key, and where the
/// connection comes from.
public struct Caller: Sendable, Equatable {
    /// The user name the client gave in SSH authentication.
    public var user: String
    /// The authorized_keys line that admitted the key (its options apply).
    public var key: AuthorizedKey
    /// The client's IP address, as text.
    public var address: String
    /// The client's TCP port.
    public var port: UInt16

    /// A caller as the server saw it authenticate.
    public init(user: String, key: AuthorizedKey, address: String, port: UInt16) {
        self.user = user
        self.key = key
        self.address = address
        self.port = port
    }
}

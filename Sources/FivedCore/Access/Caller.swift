/// Who is opening a channel: the authenticated SSH user and key, and where the
/// connection comes from.
public struct Caller: Sendable, Equatable {
    /// The user name the client gave in SSH authentication.
    public var user: String
    /// The authorized_keys line that admitted the key (its options apply). For a
    /// certificate: the certified key, with the options of the line that
    /// admitted it (`CertificateCheck.Acceptance.key`).
    public var key: AuthorizedKey
    /// The client's IP address, as text.
    public var address: String
    /// The client's TCP port.
    public var port: UInt16
    /// Set when the key was an OpenSSH user certificate: its key ID, serial,
    /// matched principal, CA fingerprint and restrictions, which `AccessPolicy`
    /// applies on top of `key`'s options.
    public var certificate: CertificateIdentity?

    /// A caller as the server saw it authenticate.
    public init(user: String, key: AuthorizedKey, address: String, port: UInt16, certificate: CertificateIdentity? = nil) {
        self.user = user
        self.key = key
        self.address = address
        self.port = port
        self.certificate = certificate
    }
}

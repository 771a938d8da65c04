/// Who a certificate says the caller is, once `CertificateCheck` accepted it:
/// what services learn (`FIVED_CERT_*`, PROXY v2 TLVs 0xE4-0xE7), what allow
/// lists match (`key-id:`, `principal:`, `ca:`), and the restrictions
/// `AccessPolicy` applies on top of the admitting line's options.
public struct CertificateIdentity: Sendable, Equatable, CustomStringConvertible {
    /// The certificate's key ID.
    public var keyID: String
    /// The certificate's serial number (0: the CA does not number).
    public var serial: UInt64
    /// The principal that admitted the login: the SSH user name, or the entry of
    /// `principals="..."` or of the authorized principals file that matched.
    public var principal: String
    /// The CA key's `SHA256:` fingerprint, as `ssh-keygen -l` prints it.
    public var caFingerprint: String
    /// The certificate's critical options and extensions.
    public var restrictions: CertificateRestrictions

    /// An identity as `CertificateCheck` builds it.
    public init(keyID: String, serial: UInt64, principal: String, caFingerprint: String, restrictions: CertificateRestrictions) {
        self.keyID = keyID
        self.serial = serial
        self.principal = principal
        self.caFingerprint = caFingerprint
        self.restrictions = restrictions
    }

    /// `ID "KEY-ID" serial N principal P CA SHA256:...`, for logs.
    public var description: String {
        "ID \"\(ServiceName.printable(keyID))\" serial \(serial) principal \(ServiceName.printable(principal)) CA \(caFingerprint)"
    }
}

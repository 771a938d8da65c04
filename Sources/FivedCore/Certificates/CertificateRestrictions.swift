/// What a user certificate's critical options and extensions say, read as sshd
/// reads them (auth-options.c `sshauthopt_from_cert`, `cert_option_list`;
/// PROTOCOL.certkeys "Critical options" and "Extensions").
///
/// Critical options restrict: `force-command` (in fived, the service every
/// session channel goes to, as `command=`), `source-address` (addresses and
/// CIDR networks the client must connect from) and `verify-required` (FIDO user
/// verification). Any other critical option refuses the certificate.
/// Extensions grant, and a certificate without them grants nothing:
/// `permit-port-forwarding` is what fived needs for every service open other
/// than a forced one, and for publishing. Unknown extensions are ignored (and
/// listed), as sshd ignores them.
public struct CertificateRestrictions: Sendable, Equatable {
    /// `force-command`: the forced service.
    public var forceCommand: String?
    /// `source-address`: where the client must connect from.
    public var sourceAddress: AddressPattern?
    /// `verify-required`: signatures by a security key must assert user verification.
    public var verifyRequired = false
    /// `permit-port-forwarding`: service opens (but a forced one) and publishing.
    public var permitPortForwarding = false
    /// `permit-agent-forwarding`; fived never forwards agents.
    public var permitAgentForwarding = false
    /// `permit-X11-forwarding`; fived never forwards X11.
    public var permitX11Forwarding = false
    /// `permit-pty`; fived grants pty-req only to exec services with `pty = true`.
    public var permitPTY = false
    /// `permit-user-rc`; fived runs no rc file.
    public var permitUserRC = false
    /// `no-touch-required`: a security key need not assert user presence.
    public var noTouchRequired = false
    /// Extensions sshd does not know, by name, ignored.
    public var otherExtensions: [String] = []

    /// Nothing permitted, nothing forced: a certificate with no options or extensions.
    public init() {}

    /// Reads `certificate`'s options and extensions. Throws
    /// `.unknownCriticalOption` for a critical option sshd does not know and
    /// `.invalidOption` for a known one with a malformed value (extra data, a
    /// NUL, a bad source-address list), as sshd refuses such certificates.
    public init(certificate: OpenSSHCertificate) throws(CertificateRefusal) {
        for option in certificate.criticalOptions {
            switch option.name {
            case "force-command":
                forceCommand = try Self.stringValue(option)
            case "source-address":
                let list = try Self.stringValue(option)
                do {
                    sourceAddress = try AddressPattern(sourceAddressList: list, context: "certificate")
                } catch {
                    throw .invalidOption("invalid source-address \"\(ServiceName.printable(list))\"")
                }
            case "verify-required":
                try Self.flag(option)
                verifyRequired = true
            default:
                throw .unknownCriticalOption(option.name)
            }
        }
        for option in certificate.extensions {
            switch option.name {
            case "permit-port-forwarding": try Self.flag(option); permitPortForwarding = true
            case "permit-agent-forwarding": try Self.flag(option); permitAgentForwarding = true
            case "permit-X11-forwarding": try Self.flag(option); permitX11Forwarding = true
            case "permit-pty": try Self.flag(option); permitPTY = true
            case "permit-user-rc": try Self.flag(option); permitUserRC = true
            case "no-touch-required": try Self.flag(option); noTouchRequired = true
            default: otherExtensions.append(option.name)
            }
        }
    }

    /// The one NUL-free string a valued option's data holds, and nothing after it.
    private static func stringValue(_ option: OpenSSHCertificate.Option) throws(CertificateRefusal) -> String {
        var reader = WireReader(option.data)
        guard let value = reader.cString(), reader.isAtEnd else {
            throw .invalidOption("certificate option \(ServiceName.printable(option.name)) is corrupt")
        }
        return String(decoding: value, as: UTF8.self)
    }

    /// A flag's data must be empty (sshd: "corrupt (extra data)").
    private static func flag(_ option: OpenSSHCertificate.Option) throws(CertificateRefusal) {
        guard option.data.isEmpty else {
            throw .invalidOption("certificate option \(ServiceName.printable(option.name)) is corrupt (extra data)")
        }
    }
}

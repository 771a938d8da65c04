/// Why `CertificateCheck` refused a certificate: one log-ready line, never sent
/// to the client (which sees only an authentication failure, as with sshd).
/// A decision's reason like `OpenRefusal`, not a failure of fived: it conforms
/// to `Error` only so that `CertificateRestrictions` can throw it typed, and
/// parse errors stay `FivedCoreError`.
public enum CertificateRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// A host certificate (type 2) presented for user authentication.
    case hostCertificate
    /// The CA's signature does not verify or uses a refused algorithm; the CA's fingerprint.
    case signature(SSHSignature.Failure, ca: String)
    /// A critical option sshd does not know (PROTOCOL.certkeys: refuse such certificates).
    case unknownCriticalOption(String)
    /// A known option with a malformed value (the phrase says which).
    case invalidOption(String)
    /// A user certificate without principals, which sshd refuses ("lacks principal list").
    case noPrincipals
    /// Listed in a `revoked_keys` file (or such a file is unusable).
    case revoked(Revocation)
    /// No `cert-authority` line and no `trusted_user_ca_keys` entry lists the CA.
    case caNotTrusted(String)
    /// Before `valid after` (seconds since the epoch); sshd allows no clock skew.
    case notYetValid(UInt64)
    /// At or after `valid before` (seconds since the epoch).
    case expired(UInt64)
    /// The client address is not in the certificate's `source-address` list.
    case sourceAddress(client: String, allowed: String)
    /// A security-key certificate whose session signature flags are missing or
    /// lack what the certificate and line require (the phrase says what).
    case securityKey(String)
    /// Every authority that trusts the CA refused, each for its own reason, in order.
    case authorities([AuthorityRefusal])

    public var description: String {
        switch self {
        case .hostCertificate: return "host certificate used for user authentication"
        case .signature(let failure, let ca): return "certificate signature by CA \(ca) refused: \(failure)"
        case .unknownCriticalOption(let name): return "unknown critical option \(ServiceName.printable(name))"
        case .invalidOption(let why): return why
        case .noPrincipals: return "certificate has no principals (sshd refuses such user certificates)"
        case .revoked(let revocation): return revocation.description
        case .caNotTrusted(let fingerprint): return "CA \(fingerprint) not trusted"
        case .notYetValid(let after): return "certificate not valid before \(CertificateTime.format(after))"
        case .expired(let before): return "certificate expired at \(CertificateTime.format(before))"
        case .sourceAddress(let client, let allowed):
            return "client address \(client) not in the certificate's source-address \"\(ServiceName.printable(allowed))\""
        case .securityKey(let why): return why
        case .authorities(let refusals): return refusals.map(\.description).joined(separator: "; ")
        }
    }
}

/// Why one authority that trusts the CA (a `cert-authority` authorized_keys line,
/// or a `trusted_user_ca_keys` entry with its principals) refused the login.
public struct AuthorityRefusal: Sendable, Equatable, CustomStringConvertible {
    /// What refused.
    public enum Reason: Sendable, Equatable {
        /// The line's `expiry-time` (seconds since the epoch) has passed.
        case lineExpired(at: Int64)
        /// The client address is not in the line's `from=` list.
        case fromMismatch(pattern: String)
        /// The SSH user name is not among the certificate's principals.
        case principalNotInCertificate(user: String, principals: [String])
        /// No name of the line's `principals="..."` is a certificate principal.
        case principalsOptionMismatch(option: String, principals: [String])
        /// No line of the authorized principals file names a certificate principal.
        case noAuthorizedPrincipal(file: String, principals: [String])
        /// The line's `command=` and the certificate's `force-command` differ
        /// (sshd: "forced command options do not match").
        case forcedCommandsDiffer(line: String, certificate: String)
        /// An authorized principals line with `cert-authority` or `principals=`,
        /// which sshd refuses there.
        case optionInvalidInPrincipalsFile(String)
    }

    /// `FILE:LINE` of the authorized_keys or principals line, or the CA file's line.
    public var location: String
    /// What refused.
    public var reason: Reason

    /// A refusal by the authority at `location`.
    public init(location: String, reason: Reason) {
        self.location = location
        self.reason = reason
    }

    public var description: String {
        func list(_ principals: [String]) -> String { principals.map { ServiceName.printable($0) }.joined(separator: ",") }
        let text: String
        switch reason {
        case .lineExpired(let at):
            text = "entry expired at \(at < 0 ? "\(at)" : CertificateTime.format(UInt64(at)))"
        case .fromMismatch(let pattern):
            text = "client address not in from=\"\(pattern)\""
        case .principalNotInCertificate(let user, let principals):
            text = "principal \(ServiceName.printable(user)) not in certificate (principals: \(list(principals)))"
        case .principalsOptionMismatch(let option, let principals):
            text = "no name of principals=\"\(ServiceName.printable(option))\" is in the certificate (principals: \(list(principals)))"
        case .noAuthorizedPrincipal(let file, let principals):
            text = "no line of \(file) names a principal of the certificate (principals: \(list(principals)))"
        case .forcedCommandsDiffer(let line, let certificate):
            text = "command=\"\(ServiceName.printable(line))\" and the certificate's force-command \"\(ServiceName.printable(certificate))\" differ"
        case .optionInvalidInPrincipalsFile(let option):
            text = "\(option) is not valid in an authorized principals file"
        }
        return "\(location): \(text)"
    }
}

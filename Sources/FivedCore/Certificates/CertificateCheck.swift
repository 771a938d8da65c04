/// Decides, at authentication time, whether a user certificate admits a login,
/// as sshd does (auth2-pubkey.c `user_key_allowed`, `user_cert_trusted_ca`;
/// auth2-pubkeyfile.c `auth_check_authkey_line`; sshkey.c
/// `sshkey_cert_check_authority`). A pure function of its `Request`: the
/// runtime reads the files, this decides.
///
/// In order, the first failure refusing:
/// 1. The certificate is a user certificate, its CA signature verifies with an
///    accepted algorithm (`SSHSignature`), every critical option is known and
///    well formed (`CertificateRestrictions`), and it names a principal.
/// 2. No `revoked_keys` file revokes it: its key, its serial or key ID, its CA
///    (an unusable file revokes everything).
/// 3. Some authority trusts its CA: an authorized_keys line with
///    `cert-authority` and the CA's key, or a `trusted_user_ca_keys` entry.
///    Otherwise "CA ... not trusted".
/// 4. valid after <= now < valid before (no clock-skew allowance, as sshd).
/// 5. The client address is in the certificate's `source-address`, if any.
/// 6. The authorities are tried in order: the `cert-authority` lines in file
///    order, then `trusted_user_ca_keys`. A `cert-authority` line admits when
///    its `expiry-time` has not passed, its `from=` admits the client, a name of
///    its `principals="..."` is a principal of the certificate (without
///    `principals=`, the SSH user name must be one), and its `command=` does not
///    differ from the certificate's `force-command`. Through
///    `trusted_user_ca_keys`, with an `authorized_principals_file`, its first line
///    whose principal is in the certificate decides, and that line's options
///    apply as a `cert-authority` line's would (`cert-authority` and
///    `principals=` are refused there); without one, the SSH user name must be a
///    principal. A refusing authority does not stop the search.
/// 7. A security-key certificate (`sk-*-cert-v01`) needs the session
///    signature's flags: user presence unless both the certificate
///    (`no-touch-required`) and the line (`no-touch-required`) waive it, user
///    verification when either asks (`verify-required`). Without the flags
///    (libssh 0.10 does not hand them over) such a certificate is refused.
///
/// How the restrictions combine: the certificate's critical options and
/// extensions, the admitting line's options, and the service's `allow` list
/// each can only take away. `source-address` and `from=` must both admit the
/// client; forwarding (every open but a forced one, and publishing) needs both
/// the line's port forwarding (not `restrict`/`no-port-forwarding`, or
/// `port-forwarding` after them) and the certificate's
/// `permit-port-forwarding`; `permitopen`/`permitlisten` still limit names;
/// a forced service comes from `force-command` or `command=`, and when both are
/// present they must be equal; then the `allow` list must admit the caller.
/// `AccessPolicy` applies the channel-time part of this.
public enum CertificateCheck {
    /// Everything the decision depends on.
    public struct Request: Sendable {
        /// The certificate the client presented (its signature not yet checked).
        public var certificate: OpenSSHCertificate
        /// The user name the client gave in SSH authentication.
        public var user: String
        /// The client's IP address, as text.
        public var clientAddress: String
        /// Now, in seconds since the epoch.
        public var now: Int64
        /// The honoured lines of every authorized_keys file for `user`, in the
        /// order sshd reads them; the `cert-authority` lines among them count.
        public var authorizedKeys: [AuthorizedKey]
        /// The CA keys of every `trusted_user_ca_keys` file, in order.
        public var trustedCAKeys: [AuthorizedKey]
        /// The `authorized_principals_file` for `user`, when one is configured
        /// (with no entries when it does not exist); nil when none is configured.
        public var authorizedPrincipals: AuthorizedPrincipalsFile?
        /// Every `revoked_keys` file.
        public var revokedKeys: [RevokedKeys]
        /// The flags byte of the client's security-key signature (PROTOCOL.u2f:
        /// 0x01 user present, 0x04 user verified), when the runtime has it.
        public var securityKeyFlags: UInt8?

        /// A request; the lists default to empty.
        public init(
            certificate: OpenSSHCertificate, user: String, clientAddress: String, now: Int64,
            authorizedKeys: [AuthorizedKey] = [], trustedCAKeys: [AuthorizedKey] = [],
            authorizedPrincipals: AuthorizedPrincipalsFile? = nil, revokedKeys: [RevokedKeys] = [],
            securityKeyFlags: UInt8? = nil
        ) {
            self.certificate = certificate
            self.user = user
            self.clientAddress = clientAddress
            self.now = now
            self.authorizedKeys = authorizedKeys
            self.trustedCAKeys = trustedCAKeys
            self.authorizedPrincipals = authorizedPrincipals
            self.revokedKeys = revokedKeys
            self.securityKeyFlags = securityKeyFlags
        }
    }

    /// An accepted certificate: the line whose options govern the connection and
    /// the identity the certificate gives.
    public struct Acceptance: Sendable, Equatable, CustomStringConvertible {
        /// The admitting line, as `KeyMatcher` would give it for a plain key: the
        /// certified key as `blob`, the line's comment and options, and its
        /// `FILE:LINE` (the `cert-authority` line; the principals file line; or,
        /// without a principals file, the `trusted_user_ca_keys` line).
        public var key: AuthorizedKey
        /// The certificate's identity and restrictions.
        public var identity: CertificateIdentity

        /// An acceptance as `check` builds it.
        public init(key: AuthorizedKey, identity: CertificateIdentity) {
            self.key = key
            self.identity = identity
        }

        /// The caller to hand to `AccessPolicy` for this connection.
        public func caller(user: String, address: String, port: UInt16) -> Caller {
            Caller(user: user, key: key, address: address, port: port, certificate: identity)
        }

        public var description: String { "certificate \(identity) accepted by \(key.location)" }
    }

    /// The outcome of `check`.
    public enum Decision: Sendable, Equatable, CustomStringConvertible {
        /// The certificate admits the login.
        case accepted(Acceptance)
        /// It does not; the reason is for the log.
        case refused(CertificateRefusal)

        public var description: String {
            switch self {
            case .accepted(let a): return a.description
            case .refused(let r): return "certificate refused: \(r)"
            }
        }
    }

    /// PROTOCOL.u2f flag bits.
    static let userPresent: UInt8 = 0x01
    static let userVerified: UInt8 = 0x04

    /// Decides `request` (see the type's documentation for the rules).
    public static func check(_ request: Request) -> Decision {
        let cert = request.certificate
        let ca = cert.signatureKey.fingerprint
        guard cert.kind == .user else { return .refused(.hostCertificate) }
        if case .failure(let failure) = cert.verifySignature() { return .refused(.signature(failure, ca: ca)) }
        let restrictions: CertificateRestrictions
        do {
            restrictions = try CertificateRestrictions(certificate: cert)
        } catch {
            return .refused(error)
        }
        guard !cert.principals.isEmpty else { return .refused(.noPrincipals) }
        for file in request.revokedKeys {
            if let revocation = file.revocation(of: cert) { return .refused(.revoked(revocation)) }
        }

        let lines = request.authorizedKeys.filter { $0.options.certAuthority && $0.blob == cert.signatureKey }
        let trusted = request.trustedCAKeys.first { $0.blob == cert.signatureKey }
        guard !lines.isEmpty || trusted != nil else { return .refused(.caNotTrusted(ca)) }

        guard request.now >= 0, UInt64(request.now) >= cert.validAfter else { return .refused(.notYetValid(cert.validAfter)) }
        guard UInt64(request.now) < cert.validBefore else { return .refused(.expired(cert.validBefore)) }
        if let allowed = restrictions.sourceAddress, !allowed.matches(address: request.clientAddress) {
            return .refused(.sourceAddress(client: request.clientAddress, allowed: allowed.text))
        }

        var refusals: [AuthorityRefusal] = []
        var admitted: (key: AuthorizedKey, principal: String)? = nil
        for line in lines {
            func refuse(_ reason: AuthorityRefusal.Reason) { refusals.append(AuthorityRefusal(location: line.location, reason: reason)) }
            if let reason = lineRefusal(line.options, request: request, restrictions: restrictions) {
                refuse(reason)
                continue
            }
            let principal: String
            if let option = line.options.principals {
                guard let found = firstMatchingPrincipal(option, in: cert.principals) else {
                    refuse(.principalsOptionMismatch(option: option, principals: cert.principals))
                    continue
                }
                principal = found
            } else {
                guard cert.principals.contains(where: { sameBytes($0, request.user) }) else {
                    refuse(.principalNotInCertificate(user: request.user, principals: cert.principals))
                    continue
                }
                principal = request.user
            }
            admitted = (AuthorizedKey(blob: cert.key, comment: line.comment, options: line.options, file: line.file, line: line.line), principal)
            break
        }
        if admitted == nil, let trusted {
            if let file = request.authorizedPrincipals {
                if let entry = file.entries.first(where: { entry in cert.principals.contains { sameBytes($0, entry.principal) } }) {
                    if entry.options.certAuthority {
                        refusals.append(AuthorityRefusal(location: entry.location, reason: .optionInvalidInPrincipalsFile("cert-authority")))
                    } else if entry.options.principals != nil {
                        refusals.append(AuthorityRefusal(location: entry.location, reason: .optionInvalidInPrincipalsFile("principals=")))
                    } else if let reason = lineRefusal(entry.options, request: request, restrictions: restrictions) {
                        refusals.append(AuthorityRefusal(location: entry.location, reason: reason))
                    } else {
                        let key = AuthorizedKey(blob: cert.key, comment: trusted.comment, options: entry.options, file: entry.file, line: entry.line)
                        admitted = (key, entry.principal)
                    }
                } else {
                    refusals.append(
                        AuthorityRefusal(location: trusted.location, reason: .noAuthorizedPrincipal(file: file.path, principals: cert.principals)))
                }
            } else if cert.principals.contains(where: { sameBytes($0, request.user) }) {
                let key = AuthorizedKey(blob: cert.key, comment: trusted.comment, options: KeyOptions(), file: trusted.file, line: trusted.line)
                admitted = (key, request.user)
            } else {
                refusals.append(
                    AuthorityRefusal(location: trusted.location, reason: .principalNotInCertificate(user: request.user, principals: cert.principals)))
            }
        }
        guard let (key, principal) = admitted else { return .refused(.authorities(refusals)) }

        if cert.key.keyType.hasPrefix("sk-") {
            guard let flags = request.securityKeyFlags else {
                return .refused(.securityKey("security-key certificate refused: the session signature's touch flags are not available to check"))
            }
            if (key.options.touchRequired || !restrictions.noTouchRequired) && flags & userPresent == 0 {
                return .refused(.securityKey("security-key signature without user presence (touch), which is required"))
            }
            if (key.options.verifyRequired || restrictions.verifyRequired) && flags & userVerified == 0 {
                return .refused(.securityKey("security-key signature without user verification, which verify-required requires"))
            }
        }
        let identity = CertificateIdentity(
            keyID: cert.keyID, serial: cert.serial, principal: principal, caFingerprint: ca, restrictions: restrictions)
        return .accepted(Acceptance(key: key, identity: identity))
    }

    /// The options checks a `cert-authority` or principals line makes
    /// (auth2-pubkeyfile.c `auth_authorise_keyopts`, then `sshauthopt_merge`'s
    /// forced-command rule): expiry first, then `from=`, then `command=`.
    private static func lineRefusal(
        _ options: KeyOptions, request: Request, restrictions: CertificateRestrictions
    ) -> AuthorityRefusal.Reason? {
        if let expiry = options.expiryTime, expiry < request.now { return .lineExpired(at: expiry) }
        if let from = options.from, !from.matches(address: request.clientAddress) { return .fromMismatch(pattern: from.text) }
        if let line = options.command, let forced = restrictions.forceCommand, !sameBytes(line, forced) {
            return .forcedCommandsDiffer(line: line, certificate: forced)
        }
        return nil
    }

    /// sshd's `match_principals_option`: the option's comma-separated names in
    /// order, up to the first empty one; the first that is a certificate
    /// principal (compared byte for byte).
    private static func firstMatchingPrincipal(_ option: String, in principals: [String]) -> String? {
        for name in option.split(separator: ",", omittingEmptySubsequences: false) {
            if name.isEmpty { return nil }
            if principals.contains(where: { sameBytes($0, name) }) { return String(name) }
        }
        return nil
    }

    /// Byte equality, as sshd's `strcmp` (Swift's `==` would equate canonically
    /// equivalent Unicode spellings).
    static func sameBytes(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        a.utf8.elementsEqual(b.utf8)
    }
}

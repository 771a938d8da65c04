import Foundation
import Testing
@testable import FivedCore

/// The sshd decision on user certificates, each case with a certificate, CA and
/// revocation list that ssh-keygen makes at test time, and the exact outcome.
@Suite struct CertificateCheckTests {
    static let utc = TimeZone(identifier: "UTC")!
    /// 2026-06-01T00:00:00Z, inside the validity window most tests use.
    static let now: Int64 = 1_780_272_000
    /// -V for a certificate valid 2026-01-01T00:00:00Z .. 2026-11-29T10:00:00Z.
    static let window = "20260101000000Z:20261129100000Z"
    static let windowStart: UInt64 = 1_767_225_600
    static let windowEnd: UInt64 = 1_795_946_400

    /// A CA (`ca`), a user key (`user`) and helpers around them.
    struct Setup {
        let k: Keygen
        let ca: PublicKeyBlob
        let user: PublicKeyBlob
        /// `ssh-ed25519 AAAA... ca`
        let caLine: String

        init(caType: String = "ed25519", caBits: Int? = nil) throws {
            k = try Keygen()
            ca = try k.key("ca", type: caType, bits: caBits)
            user = try k.key("user")
            caLine = try k.text("ca.pub").trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Parses authorized_keys text as the file `ak`.
        func authorizedKeys(_ text: String) -> [AuthorizedKey] {
            let (keys, problems) = AuthorizedKeysParser.parseFile(text, path: "ak", timeZone: CertificateCheckTests.utc)
            #expect(problems.isEmpty, "\(problems)")
            return keys
        }

        /// The CA as the trusted_user_ca_keys file `/etc/fived/ca.pub`.
        var trusted: [AuthorizedKey] {
            let (keys, problems) = TrustedCAKeysParser.parseFile(Array((caLine + "\n").utf8), path: "/etc/fived/ca.pub")
            #expect(problems.isEmpty)
            return keys
        }

        func principals(_ text: String) -> AuthorizedPrincipalsFile {
            let (entries, problems) = AuthorizedPrincipalsParser.parseFile(
                Array(text.utf8), path: "/etc/fived/principals/alice", timeZone: CertificateCheckTests.utc)
            #expect(problems.isEmpty, "\(problems)")
            return AuthorizedPrincipalsFile(path: "/etc/fived/principals/alice", entries: entries)
        }

        func check(
            _ cert: OpenSSHCertificate, user: String = "alice", address: String = "192.0.2.7", now: Int64 = CertificateCheckTests.now,
            authorizedKeys: [AuthorizedKey]? = nil, trusted: [AuthorizedKey] = [], principals: AuthorizedPrincipalsFile? = nil,
            revoked: [RevokedKeys] = [], flags: UInt8? = nil
        ) -> CertificateCheck.Decision {
            CertificateCheck.check(
                CertificateCheck.Request(
                    certificate: cert, user: user, clientAddress: address, now: now,
                    authorizedKeys: authorizedKeys ?? self.authorizedKeys("cert-authority \(caLine)"), trustedCAKeys: trusted,
                    authorizedPrincipals: principals, revokedKeys: revoked, securityKeyFlags: flags))
        }

        /// What ssh-keygen's default extensions permit.
        static var defaultRestrictions: CertificateRestrictions {
            var r = CertificateRestrictions()
            r.permitPortForwarding = true
            r.permitAgentForwarding = true
            r.permitX11Forwarding = true
            r.permitPTY = true
            r.permitUserRC = true
            return r
        }
    }

    static func refusal(_ d: CertificateCheck.Decision) -> CertificateRefusal? {
        if case .refused(let r) = d { return r }
        return nil
    }

    static func acceptance(_ d: CertificateCheck.Decision) -> CertificateCheck.Acceptance? {
        if case .accepted(let a) = d { return a }
        return nil
    }

    // MARK: accepted

    @Test func validThroughCertAuthorityLine() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", id: "alice-laptop", principals: "alice,bob", validity: Self.window, serial: 42)
        let lines = s.authorizedKeys("cert-authority \(s.caLine)")
        let decision = s.check(cert, authorizedKeys: lines)
        let expected = CertificateCheck.Acceptance(
            key: AuthorizedKey(blob: s.user, comment: "ca", options: lines[0].options, file: "ak", line: 1),
            identity: CertificateIdentity(
                keyID: "alice-laptop", serial: 42, principal: "alice", caFingerprint: s.ca.fingerprint,
                restrictions: Setup.defaultRestrictions))
        #expect(decision == .accepted(expected))
        #expect(decision.description == "certificate ID \"alice-laptop\" serial 42 principal alice CA \(s.ca.fingerprint) accepted by ak:1")
        let caller = expected.caller(user: "alice", address: "192.0.2.7", port: 5000)
        #expect(caller.certificate?.keyID == "alice-laptop")
        #expect(caller.key.blob.fingerprint == s.user.fingerprint)
        // valid from its first second up to, not including, its last
        #expect(Self.acceptance(s.check(cert, now: Int64(Self.windowStart))) != nil)
        #expect(Self.acceptance(s.check(cert, now: Int64(Self.windowEnd) - 1)) != nil)
    }

    @Test(arguments: [("ecdsa", 384), ("rsa", 2048)] as [(String, Int)])
    func validWithOtherCATypes(type: String, bits: Int) throws {
        let s = try Setup(caType: type, caBits: bits)
        let cert = try s.k.certificate("user", ca: "ca")
        #expect(Self.acceptance(s.check(cert))?.identity.caFingerprint == s.ca.fingerprint)
    }

    @Test func validThroughTrustedCAKeysWithUserNameAsPrincipal() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", principals: "bob,alice")
        let decision = s.check(cert, authorizedKeys: [], trusted: s.trusted)
        let expected = CertificateCheck.Acceptance(
            key: AuthorizedKey(blob: s.user, comment: "ca", options: KeyOptions(), file: "/etc/fived/ca.pub", line: 1),
            identity: CertificateIdentity(
                keyID: "alice-laptop", serial: 0, principal: "alice", caFingerprint: s.ca.fingerprint,
                restrictions: Setup.defaultRestrictions))
        #expect(decision == .accepted(expected))
    }

    @Test func principalViaPrincipalsFile() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", principals: "ops,deploy")
        // the user name is not a principal; the principals file decides, and its options apply
        let file = s.principals(
            """
            # who may log in as alice
            admins
            restrict,command="deploy" deploy   # the deploy robot
            ops
            """)
        let a = try #require(Self.acceptance(s.check(cert, authorizedKeys: [], trusted: s.trusted, principals: file)))
        #expect(a.identity.principal == "deploy")
        #expect(a.key.location == "/etc/fived/principals/alice:3")
        #expect(a.key.options.command == "deploy" && a.key.options.restricted)
        #expect(a.key.comment == "ca")
        // without a matching line: refused, naming the file
        let none = s.principals("admins\n")
        #expect(
            s.check(cert, authorizedKeys: [], trusted: s.trusted, principals: none).description
                == "certificate refused: /etc/fived/ca.pub:1: no line of /etc/fived/principals/alice names a principal of the certificate (principals: ops,deploy)"
        )
        // a configured but missing file admits nobody, even a certificate for "alice"
        let forAlice = try s.k.certificate("user", ca: "ca", principals: "alice")
        #expect(
            Self.refusal(s.check(forAlice, authorizedKeys: [], trusted: s.trusted, principals: AuthorizedPrincipalsFile(path: "/nope", entries: []))) != nil)
        // options sshd refuses in a principals file
        let ca = s.principals("cert-authority ops\n")
        #expect(
            Self.refusal(s.check(cert, authorizedKeys: [], trusted: s.trusted, principals: ca))
                == .authorities([AuthorityRefusal(location: "/etc/fived/principals/alice:1", reason: .optionInvalidInPrincipalsFile("cert-authority"))]))
        let from = s.principals(#"from="10.0.0.0/8" ops"# + "\n")
        #expect(
            s.check(cert, authorizedKeys: [], trusted: s.trusted, principals: from).description
                == #"certificate refused: /etc/fived/principals/alice:1: client address not in from="10.0.0.0/8""#)
        #expect(Self.acceptance(s.check(cert, address: "10.1.2.3", authorizedKeys: [], trusted: s.trusted, principals: from)) != nil)
    }

    @Test func principalsOptionOnCertAuthorityLine() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", principals: "ops,deploy")
        let lines = s.authorizedKeys(#"cert-authority,principals="admins,deploy,ops" \#(s.caLine)"#)
        #expect(Self.acceptance(s.check(cert, authorizedKeys: lines))?.identity.principal == "deploy")
        let other = s.authorizedKeys(#"cert-authority,principals="admins" \#(s.caLine)"#)
        #expect(
            s.check(cert, authorizedKeys: other).description
                == #"certificate refused: ak:1: no name of principals="admins" is in the certificate (principals: ops,deploy)"#)
        // sshd stops at the first empty name
        let empty = s.authorizedKeys(#"cert-authority,principals="admins,,ops" \#(s.caLine)"#)
        #expect(Self.refusal(s.check(cert, authorizedKeys: empty)) != nil)
    }

    @Test func lineOptionsApplyAndTheFirstAdmittingLineWins() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca")
        let lines = s.authorizedKeys(
            """
            cert-authority,from="10.0.0.0/8",command="lan" \(s.caLine)
            cert-authority,expiry-time="20260101Z",command="old" \(s.caLine)
            cert-authority,restrict,command="web" \(s.caLine)
            """)
        let a = try #require(Self.acceptance(s.check(cert, authorizedKeys: lines)))
        #expect(a.key.options.command == "web" && a.key.location == "ak:3")
        #expect(Self.acceptance(s.check(cert, address: "10.9.9.9", authorizedKeys: lines))?.key.options.command == "lan")
        #expect(
            s.check(cert, authorizedKeys: Array(lines.prefix(2))).description
                == #"certificate refused: ak:1: client address not in from="10.0.0.0/8"; ak:2: entry expired at 2026-01-01T00:00:00Z"#)
    }

    // MARK: refused

    @Test func expiredAndNotYetValid() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", validity: Self.window)
        let expired = s.check(cert, now: Int64(Self.windowEnd))
        #expect(Self.refusal(expired) == .expired(Self.windowEnd))
        #expect(expired.description == "certificate refused: certificate expired at 2026-11-29T10:00:00Z")
        let early = s.check(cert, now: Int64(Self.windowStart) - 1)
        #expect(Self.refusal(early) == .notYetValid(Self.windowStart))
        #expect(early.description == "certificate refused: certificate not valid before 2026-01-01T00:00:00Z")
        #expect(Self.refusal(s.check(cert, now: -1)) == .notYetValid(Self.windowStart))
    }

    @Test func wrongPrincipal() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", principals: "bob")
        let decision = s.check(cert, user: "alice")
        #expect(
            Self.refusal(decision) == .authorities([AuthorityRefusal(location: "ak:1", reason: .principalNotInCertificate(user: "alice", principals: ["bob"]))])
        )
        #expect(decision.description == "certificate refused: ak:1: principal alice not in certificate (principals: bob)")
        #expect(
            s.check(cert, user: "alice", authorizedKeys: [], trusted: s.trusted).description
                == "certificate refused: /etc/fived/ca.pub:1: principal alice not in certificate (principals: bob)")
        // principals compare byte for byte: a decomposed é is not the precomposed one
        let accented = try s.k.certificate("user", ca: "ca", principals: "jos\u{E9}")
        #expect(Self.acceptance(s.check(accented, user: "jos\u{E9}")) != nil)
        #expect(Self.refusal(s.check(accented, user: "jose\u{301}")) != nil)
    }

    @Test func noPrincipals() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", principals: nil)
        #expect(cert.principals.isEmpty)
        #expect(Self.refusal(s.check(cert)) == .noPrincipals)
        #expect(s.check(cert).description == "certificate refused: certificate has no principals (sshd refuses such user certificates)")
    }

    @Test func forceCommand() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", options: ["force-command=backup"])
        let a = try #require(Self.acceptance(s.check(cert)))
        #expect(a.identity.restrictions.forceCommand == "backup")
        // the line's command= must agree
        let same = s.authorizedKeys(#"cert-authority,command="backup" \#(s.caLine)"#)
        #expect(Self.acceptance(s.check(cert, authorizedKeys: same)) != nil)
        let differ = s.authorizedKeys(#"cert-authority,command="web" \#(s.caLine)"#)
        #expect(
            s.check(cert, authorizedKeys: differ).description
                == #"certificate refused: ak:1: command="web" and the certificate's force-command "backup" differ"#)
    }

    @Test func sourceAddress() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", options: ["source-address=10.0.0.0/8,2001:db8::/32"])
        #expect(Self.acceptance(s.check(cert, address: "10.1.2.3"))?.identity.restrictions.sourceAddress?.text == "10.0.0.0/8,2001:db8::/32")
        #expect(Self.acceptance(s.check(cert, address: "2001:db8::7")) != nil)
        #expect(Self.acceptance(s.check(cert, address: "::ffff:10.1.2.3")) != nil)
        let denied = s.check(cert, address: "192.0.2.7")
        #expect(Self.refusal(denied) == .sourceAddress(client: "192.0.2.7", allowed: "10.0.0.0/8,2001:db8::/32"))
        #expect(denied.description == #"certificate refused: client address 192.0.2.7 not in the certificate's source-address "10.0.0.0/8,2001:db8::/32""#)
        // from= on the line must admit too
        let lines = s.authorizedKeys(#"cert-authority,from="10.9.0.0/16" \#(s.caLine)"#)
        #expect(Self.refusal(s.check(cert, address: "10.1.2.3", authorizedKeys: lines)) != nil)
        #expect(Self.acceptance(s.check(cert, address: "10.9.2.3", authorizedKeys: lines)) != nil)
        // a list sshd's addr_match_cidr_list rejects refuses the certificate
        // (ssh-keygen will not sign one, so only the restrictions are built)
        for bad in ["10.0.0.1/8", "*", "!10.0.0.0/8", "10.0.0.0/8,", "example.com", "10.0.0.0/33", String(repeating: "1", count: 50)] {
            var b = CertificateBuilder(cert)
            b.critical = [("source-address", CertificateBuilder.value(bad))]
            let parsed = try OpenSSHCertificate(bytes: b.bytes)
            #expect(throws: CertificateRefusal.invalidOption("invalid source-address \"\(bad)\"")) { try CertificateRestrictions(certificate: parsed) }
        }
    }

    @Test func caNotTrusted() throws {
        let s = try Setup()
        try s.k.key("other")
        let cert = try s.k.certificate("user", ca: "other")
        let other = try s.k.publicKey("other.pub")
        let decision = s.check(cert, trusted: s.trusted)
        #expect(Self.refusal(decision) == .caNotTrusted(other.fingerprint))
        #expect(decision.description == "certificate refused: CA \(other.fingerprint) not trusted")
        // a plain authorized_keys line for the CA key is not cert-authority
        #expect(Self.refusal(s.check(cert, authorizedKeys: s.authorizedKeys(try s.k.text("other.pub")))) == .caNotTrusted(other.fingerprint))
    }

    @Test func hostCertificateForUserAuthentication() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", principals: "alice", host: true)
        #expect(Self.refusal(s.check(cert)) == .hostCertificate)
        #expect(s.check(cert).description == "certificate refused: host certificate used for user authentication")
    }

    @Test func corruptedSignatureByte() throws {
        let s = try Setup()
        var raw = try s.k.certify("user", ca: "ca")
        raw[raw.count - 1] ^= 0x80
        let cert = try OpenSSHCertificate(bytes: raw)
        let decision = s.check(cert)
        #expect(Self.refusal(decision) == .signature(.invalid(algorithm: "ssh-ed25519"), ca: s.ca.fingerprint))
        #expect(decision.description == "certificate refused: certificate signature by CA \(s.ca.fingerprint) refused: ssh-ed25519 signature does not verify")
    }

    @Test func sha1CASignature() throws {
        let s = try Setup(caType: "rsa", caBits: 2048)
        let cert = try s.k.certificate("user", ca: "ca", algorithm: "ssh-rsa")
        #expect(Self.refusal(s.check(cert)) == .signature(.algorithmNotAllowed("ssh-rsa"), ca: s.ca.fingerprint))
    }

    @Test func unknownCriticalOption() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca", options: ["critical:verify-foo=bar"])
        #expect(Self.refusal(s.check(cert)) == .unknownCriticalOption("verify-foo"))
        #expect(s.check(cert).description == "certificate refused: unknown critical option verify-foo")
        // unknown extensions are ignored, and listed
        let ext = try s.k.certificate("user", ca: "ca", options: ["extension:x@example.com"])
        #expect(Self.acceptance(s.check(ext))?.identity.restrictions.otherExtensions == ["x@example.com"])
    }

    @Test func corruptKnownOptions() throws {
        let s = try Setup()
        let real = try s.k.certificate("user", ca: "ca")
        func restrictions(critical: [(String, [UInt8])] = [], extensions: [(String, [UInt8])] = []) -> Result<CertificateRestrictions, CertificateRefusal> {
            var b = CertificateBuilder(real)
            b.critical = critical
            b.extensions = extensions
            return Result { () throws(CertificateRefusal) in try CertificateRestrictions(certificate: try! OpenSSHCertificate(bytes: b.bytes)) }
        }
        #expect(restrictions(critical: [("force-command", [])]) == .failure(.invalidOption("certificate option force-command is corrupt")))
        #expect(
            restrictions(critical: [("force-command", CertificateBuilder.value("a") + [0])])
                == .failure(.invalidOption("certificate option force-command is corrupt")))
        #expect(restrictions(critical: [("verify-required", [1])]) == .failure(.invalidOption("certificate option verify-required is corrupt (extra data)")))
        #expect(restrictions(extensions: [("permit-pty", [1])]) == .failure(.invalidOption("certificate option permit-pty is corrupt (extra data)")))
        var expected = CertificateRestrictions()
        expected.verifyRequired = true
        expected.noTouchRequired = true
        #expect(restrictions(critical: [("verify-required", [])], extensions: [("no-touch-required", [])]) == .success(expected))
    }

    // MARK: revocation

    @Test func caRevokedInKRL() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca")
        let krl = RevokedKeys(contents: try s.k.krl("krl", ca: nil, spec: "key: \(s.caLine)\n"), path: "/etc/fived/revoked.krl")
        #expect(krl.isKRL && krl.problem == nil)
        let decision = s.check(cert, revoked: [krl])
        #expect(Self.refusal(decision) == .revoked(.krlKey(fingerprint: s.ca.fingerprint, match: .key, isCA: true, file: "/etc/fived/revoked.krl")))
        #expect(decision.description == "certificate refused: revoked by KRL: CA \(s.ca.fingerprint) listed in /etc/fived/revoked.krl")
    }

    @Test func revokedBySerialRangeAndKeyID() throws {
        let s = try Setup()
        let serial42 = try s.k.certificate("user", ca: "ca", id: "alice-laptop", serial: 42)
        let serial7 = try s.k.certificate("user", ca: "ca", id: "alice-desk", serial: 7)
        let serial0 = try s.k.certificate("user", ca: "ca", id: "alice-phone")
        let bySerial = RevokedKeys(contents: try s.k.krl("a", ca: "ca.pub", spec: "serial: 42\n"), path: "/k")
        #expect(Self.refusal(s.check(serial42, revoked: [bySerial])) == .revoked(.krlSerial(42, file: "/k")))
        #expect(s.check(serial42, revoked: [bySerial]).description == "certificate refused: revoked by KRL serial 42 in /k")
        #expect(Self.acceptance(s.check(serial7, revoked: [bySerial])) != nil)
        #expect(Self.acceptance(s.check(serial0, revoked: [bySerial])) != nil)

        let byRange = RevokedKeys(contents: try s.k.krl("b", ca: "ca.pub", spec: "serial: 5-9\n"), path: "/k")
        #expect(Self.refusal(s.check(serial7, revoked: [byRange])) == .revoked(.krlSerial(7, file: "/k")))
        #expect(Self.acceptance(s.check(serial42, revoked: [byRange])) != nil)

        let byID = RevokedKeys(contents: try s.k.krl("c", ca: "ca.pub", spec: "id: alice-desk\n"), path: "/k")
        #expect(Self.refusal(s.check(serial7, revoked: [byID])) == .revoked(.krlKeyID("alice-desk", file: "/k")))
        #expect(s.check(serial7, revoked: [byID]).description == #"certificate refused: revoked by KRL key ID "alice-desk" in /k"#)
        #expect(Self.acceptance(s.check(serial42, revoked: [byID])) != nil)

        // a KRL for another CA does not touch these certificates; one for any CA does
        try s.k.key("other")
        let otherCA = RevokedKeys(contents: try s.k.krl("d", ca: "other.pub", spec: "serial: 42\nid: alice-desk\n"), path: "/k")
        #expect(Self.acceptance(s.check(serial42, revoked: [otherCA])) != nil)
        #expect(Self.acceptance(s.check(serial7, revoked: [otherCA])) != nil)
        let anyCA = RevokedKeys(contents: try s.k.krl("e", ca: "none", spec: "id: alice-desk\n"), path: "/k")
        #expect(Self.refusal(s.check(serial7, revoked: [anyCA])) == .revoked(.krlKeyID("alice-desk", file: "/k")))
    }

    @Test func certifiedKeyRevokedAsPlainKey() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca")
        let userLine = try s.k.text("user.pub").trimmingCharacters(in: .whitespacesAndNewlines)
        // text form, as sshd's RevokedKeys accepts
        let text = RevokedKeys(contents: Array("# revoked\n\(userLine)\n".utf8), path: "/etc/fived/revoked")
        #expect(
            Self.refusal(s.check(cert, revoked: [text])) == .revoked(.listedKey(fingerprint: s.user.fingerprint, isCA: false, location: "/etc/fived/revoked:2"))
        )
        // KRL, by key and by SHA-256 hash
        let krl = RevokedKeys(contents: try s.k.krl("k", ca: nil, spec: "sha256: \(userLine)\n"), path: "/k")
        #expect(Self.refusal(s.check(cert, revoked: [krl])) == .revoked(.krlKey(fingerprint: s.user.fingerprint, match: .sha256, isCA: false, file: "/k")))
    }

    @Test func unusableRevokedKeysRefusesEverything() throws {
        let s = try Setup()
        let cert = try s.k.certificate("user", ca: "ca")
        let missing = RevokedKeys.unreadable(path: "/etc/fived/revoked", reason: "No such file or directory")
        #expect(
            s.check(cert, revoked: [missing]).description
                == "certificate refused: every key refused: revoked_keys unusable: /etc/fived/revoked: No such file or directory")
        let garbage = RevokedKeys(contents: Array("not a key\n".utf8), path: "/r")
        #expect(garbage.problem != nil)
        #expect(Self.refusal(s.check(cert, revoked: [garbage])) == .revoked(.unusable(garbage.problem!)))
    }

    // MARK: security keys

    @Test func securityKeyCertificatesNeedTheSignatureFlags() throws {
        // ssh-keygen certifies a security-key public key without the token
        let s = try Setup()
        try s.k.write("sk.pub", TestKeys.skEd25519.line + "\n")
        let cert = try s.k.certificate("sk", ca: "ca")
        #expect(cert.certificateType == "sk-ssh-ed25519-cert-v01@openssh.com")
        #expect(cert.key == TestKeys.skEd25519.blob)
        #expect(
            s.check(cert).description
                == "certificate refused: security-key certificate refused: the session signature's touch flags are not available to check")
        #expect(Self.acceptance(s.check(cert, flags: 0x01)) != nil)
        #expect(
            s.check(cert, flags: 0x00).description
                == "certificate refused: security-key signature without user presence (touch), which is required")
        // touch is waived only when the certificate and the line both waive it
        let noTouch = try s.k.certificate("sk", ca: "ca", options: ["no-touch-required"])
        #expect(Self.refusal(s.check(noTouch, flags: 0x00)) != nil)
        let lineNoTouch = s.authorizedKeys("cert-authority,no-touch-required \(s.caLine)")
        #expect(Self.acceptance(s.check(noTouch, authorizedKeys: lineNoTouch, flags: 0x00)) != nil)
        #expect(Self.refusal(s.check(cert, authorizedKeys: lineNoTouch, flags: 0x00)) != nil)
        // verify-required from the certificate or the line needs user verification
        let verify = try s.k.certificate("sk", ca: "ca", options: ["verify-required"])
        #expect(
            s.check(verify, flags: 0x01).description
                == "certificate refused: security-key signature without user verification, which verify-required requires")
        #expect(Self.acceptance(s.check(verify, flags: 0x05)) != nil)
        let lineVerify = s.authorizedKeys("cert-authority,verify-required \(s.caLine)")
        #expect(Self.refusal(s.check(cert, authorizedKeys: lineVerify, flags: 0x01)) != nil)
        // sk-ecdsa too
        try s.k.write("skec.pub", TestKeys.skECDSA.line + "\n")
        let ec = try s.k.certificate("skec", ca: "ca")
        #expect(ec.certificateType == "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com")
        #expect(Self.acceptance(s.check(ec, flags: 0x01)) != nil)
        // a plain key's verify-required means nothing without a security key
        let plain = try s.k.certificate("user", ca: "ca", options: ["verify-required"])
        #expect(Self.acceptance(s.check(plain)) != nil)
    }

    @Test func times() {
        #expect(CertificateTime.format(0) == "1970-01-01T00:00:00Z")
        #expect(CertificateTime.format(951_782_400) == "2000-02-29T00:00:00Z")
        #expect(CertificateTime.format(1_795_946_400) == "2026-11-29T10:00:00Z")
        #expect(CertificateTime.format(253_402_300_799) == "9999-12-31T23:59:59Z")
        #expect(CertificateTime.format(253_402_300_800) == "253402300800 (seconds since the epoch)")
        #expect(CertificateTime.format(UInt64.max) == "forever")
    }
}

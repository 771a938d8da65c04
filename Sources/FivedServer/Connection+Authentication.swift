import FivedCore
import LibSSH
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension Connection {
    /// sshd's MaxAuthTries default: failed attempts before the connection is dropped.
    static let maximumAuthAttempts = 6
    /// The longest SSH user name looked up (bytes).
    static let maximumUserNameBytes = 256

    /// One SSH_MSG_USERAUTH_REQUEST. Public keys only: a probe is answered "this
    /// key would do" when a line admits it; a signed request (libssh verified the
    /// signature with the presented key) logs the caller in. Every other method,
    /// and every refused key, is answered with the failure that offers publickey.
    func authenticate(_ message: SSHMessage, _ request: SSHMessage.Authentication) {
        guard !closing, caller == nil else {
            message.refuse()
            return
        }
        guard request.method == .publicKey, let state = request.state else {
            // "none" asks which methods exist; it is not an attempt (RFC 4252 §5.2).
            if request.method != .none { DaemonMetrics.shared.authentication(method: Self.authenticationMethodLabel(request.method), succeeded: false) }
            message.refuse()
            return
        }
        guard failedAttempts < Self.maximumAuthAttempts else {
            message.refuse()
            close(reason: .tooManyAuthenticationFailures)
            return
        }
        guard let bytes = message.authenticationKeyBlob else {
            failed(message)
            return
        }
        // No account has a longer name (LOGIN_NAME_MAX is 256): refused before
        // any file or command is looked up for it.
        guard request.user.utf8.count <= Self.maximumUserNameBytes else {
            refuse(message, user: String(request.user.prefix(64)), fingerprint: "-", reason: "user name longer than \(Self.maximumUserNameBytes) bytes")
            return
        }
        guard state != .wrong else {
            // libssh checked the signature against the presented key (for a
            // certificate, the certified key) and it did not verify.
            let shown =
                PublicKeyBlob(bytes: bytes)?.fingerprint
                ?? (try? OpenSSHCertificate(bytes: bytes))?.key.fingerprint ?? "-"
            refuse(message, user: request.user, fingerprint: shown, reason: "the signature does not verify with the presented key")
            return
        }
        if OpenSSHCertificate.isCertificate(blob: bytes) {
            authenticateCertificate(message, user: request.user, bytes: bytes, signed: state == .verified)
            return
        }
        guard let blob = PublicKeyBlob(bytes: bytes) else {
            failed(message)
            return
        }
        if authenticatePeer(message, user: request.user, blob: blob, verified: state == .verified) { return }
        let config = worker.config.snapshot
        if let revocation = worker.certificateTrust.revocation(of: blob, in: config.revokedKeys) {
            refuse(message, user: request.user, fingerprint: blob.fingerprint, reason: "\(revocation)")
            return
        }
        let lookup = worker.authorizedKeys.lookup(for: request.user, patterns: config.authorizedKeys)
        let result = KeyMatcher.match(presented: blob, candidates: lookup.keys, clientAddress: client.address, now: Int64(time(nil)))
        switch result {
        case .accepted(let entry):
            admit(message, user: request.user, key: entry, certificate: nil, signed: state == .verified)
        case .notListed where config.authorizedKeysCommand != nil:
            authenticateByCommand(message, user: request.user, blob: blob, signed: state == .verified, lookup: lookup)
        case .notListed, .refused:
            let reason = lookup.read.isEmpty && result == .notListed ? "no authorized_keys file could be read" : "\(result)"
            refuse(message, user: request.user, fingerprint: blob.fingerprint, reason: reason, lookup: lookup)
        }
    }

    /// A key no authorized_keys file lists, with `authorized_keys_command`
    /// configured: the command's output is read as one more authorized_keys
    /// file (sshd reads the files first, then the command). The request waits
    /// off the event loop (`AuthorizedKeysCommandRun`); this connection reads
    /// nothing meanwhile, the others are not held up. Any failure refuses the key.
    private func authenticateByCommand(_ message: SSHMessage, user: String, blob: PublicKeyBlob, signed: Bool, lookup: AuthorizedKeysLookup) {
        awaitingKeysCommand = true
        let waiting = WaitingAuthentication(connection: self, message: message)
        let worker = worker
        AuthorizedKeysCommandRun.start(spawner: worker.spawner, user: user, key: blob) { outcome in
            worker.post(
                .perform { _ in
                    guard let connection = waiting.connection else { return }
                    connection.keysCommandAnswered(waiting.message, user: user, blob: blob, signed: signed, lookup: lookup, outcome: outcome)
                })
        }
    }

    private func keysCommandAnswered(
        _ message: SSHMessage, user: String, blob: PublicKeyBlob, signed: Bool, lookup: AuthorizedKeysLookup,
        outcome: AuthorizedKeysCommandRun.Outcome
    ) {
        awaitingKeysCommand = false
        defer { worker.touched[ObjectIdentifier(self)] = self }
        guard !closing else { return }
        var lookup = lookup
        lookup.read.append("authorized_keys_command")
        switch outcome {
        case .failure(let failure):
            refuse(message, user: user, fingerprint: blob.fingerprint, reason: "\(failure)", lookup: lookup)
        case .success(let output):
            let parsed = AuthorizedKeysParser.parseFile(String(decoding: output, as: UTF8.self), path: "authorized_keys_command")
            for problem in parsed.problems {
                logger.warning("authorized_keys line not honoured", metadata: ["reason": "\(problem.message)"])
            }
            let result = KeyMatcher.match(presented: blob, candidates: parsed.keys, clientAddress: client.address, now: Int64(time(nil)))
            switch result {
            case .accepted(let entry):
                admit(message, user: user, key: entry, certificate: nil, signed: signed)
            case .notListed, .refused:
                refuse(message, user: user, fingerprint: blob.fingerprint, reason: "\(result)", lookup: lookup)
            }
        }
    }

    /// A user certificate (`*-cert-v01@openssh.com`): libssh verified the
    /// session signature with the certified key and looked at nothing else
    /// (docs/libssh.md); `CertificateCheck` does what sshd does with the rest.
    private func authenticateCertificate(_ message: SSHMessage, user: String, bytes: [UInt8], signed: Bool) {
        let certificate: OpenSSHCertificate
        do {
            certificate = try OpenSSHCertificate(bytes: bytes)
        } catch {
            refuse(message, user: user, fingerprint: "-", reason: error.message)
            return
        }
        let config = worker.config.snapshot
        let trust = worker.certificateTrust
        let request = CertificateCheck.Request(
            certificate: certificate, user: user, clientAddress: client.address, now: Int64(time(nil)),
            authorizedKeys: worker.authorizedKeys.keys(for: user, patterns: config.authorizedKeys),
            trustedCAKeys: trust.trustedCAKeys(config.trustedUserCAKeys),
            authorizedPrincipals: trust.principals(
                pattern: config.trustedUserCAKeys.isEmpty ? nil : config.authorizedPrincipalsFile, user: user,
                home: AuthorizedKeysStore.home(of: user)),
            revokedKeys: trust.revokedKeys(config.revokedKeys))
        switch CertificateCheck.check(request) {
        case .accepted(let acceptance):
            admit(message, user: user, key: acceptance.key, certificate: acceptance.identity, signed: signed)
        case .refused(let refusal):
            refuse(
                message, user: user, fingerprint: certificate.key.fingerprint,
                reason: "certificate \(certificate.keyID.isEmpty ? "" : "'\(ServiceName.printable(certificate.keyID))' ")refused: \(refusal)")
        }
    }

    /// A key (plain, or the key a certificate certifies) that may log in: a probe
    /// is told "this key would do"; a signed request logs the caller in, counted
    /// against `max_connections_per_key`.
    private func admit(_ message: SSHMessage, user: String, key: AuthorizedKey, certificate: CertificateIdentity?, signed: Bool) {
        let fingerprint = key.blob.fingerprint
        let limit = worker.config.snapshot.limits.maxConnectionsPerKey
        guard signed ? takeKeyConnection(fingerprint) : worker.keyUsage.takeConnection(fingerprint, limit: limit) else {
            logger.info(
                "authentication refused",
                metadata: [
                    "user": "\(user)", "fingerprint": "\(fingerprint)", "client": "\(client)",
                    "reason": "max_connections_per_key (\(limit)) reached",
                ])
            failed(message)
            return
        }
        guard signed else {
            worker.keyUsage.releaseConnection(fingerprint)  // a probe only asks; the count is taken when it signs
            message.acceptPublicKeyProbe()  // "this key would do"
            return
        }
        caller = Caller(user: user, key: key, address: client.address, port: client.port, certificate: certificate)
        message.acceptAuthentication()
        DaemonMetrics.shared.authentication(method: certificate == nil ? "publickey" : "certificate", succeeded: true)
        releaseStartupSlot()
        var metadata: Logger.Metadata = [
            "user": "\(user)", "fingerprint": "\(fingerprint)", "client": "\(client)",
            "comment": "\(key.comment)", "key_file": "\(key.file):\(key.line)",
        ]
        if let certificate {
            metadata["key_id"] = "\(certificate.keyID)"
            metadata["serial"] = "\(certificate.serial)"
            metadata["principal"] = "\(certificate.principal)"
            metadata["ca"] = "\(certificate.caFingerprint)"
        }
        logger.info("authenticated", metadata: metadata)
    }

    /// Logs a failed attempt (what was tried and why it failed, with the files
    /// read, missing, unsafe or unreadable when `lookup` is given, so the log
    /// alone says what to fix) and answers it.
    private func refuse(_ message: SSHMessage, user: String, fingerprint: String, reason: String, lookup: AuthorizedKeysLookup? = nil) {
        var metadata: Logger.Metadata = [
            "user": "\(user)", "fingerprint": "\(fingerprint)", "client": "\(client)", "reason": "\(reason)",
        ]
        if let lookup {
            metadata["files"] = "\(lookup.read.joined(separator: ", "))"
            if !lookup.missing.isEmpty { metadata["missing"] = "\(lookup.missing.joined(separator: ", "))" }
            if !lookup.unsafe.isEmpty { metadata["unsafe"] = "\(lookup.unsafe.joined(separator: ", "))" }
            if !lookup.unreadable.isEmpty { metadata["unreadable"] = "\(lookup.unreadable.joined(separator: ", "))" }
        }
        logger.info("authentication failed", metadata: metadata)
        failed(message)
    }

    private func failed(_ message: SSHMessage) {
        let certificate = message.authenticationKeyBlob.map { OpenSSHCertificate.isCertificate(blob: $0) } ?? false
        DaemonMetrics.shared.authentication(method: certificate ? "certificate" : "publickey", succeeded: false)
        failedAttempts += 1
        message.refuse()
        if failedAttempts >= Self.maximumAuthAttempts {
            close(reason: .tooManyAuthenticationFailures)
        }
    }
}

/// An authentication request held while authorized_keys_command runs. Only the
/// connection's worker thread touches either; the box only carries them across.
private final class WaitingAuthentication: @unchecked Sendable {
    weak var connection: Connection?
    let message: SSHMessage

    init(connection: Connection, message: SSHMessage) {
        self.connection = connection
        self.message = message
    }
}

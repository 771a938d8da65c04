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
        let (user, signed, store) = (request.user, state == .verified, worker.authorizedKeys)
        awaitAnswer(message) { answer in
            store.lookup(for: user, patterns: config.authorizedKeys, completion: answer)
        } decide: { connection, message, lookup in
            connection.authenticate(message, user: user, blob: blob, signed: signed, lookup: lookup, byCommand: config.authorizedKeysCommand != nil)
        }
    }

    /// A plain key, with the authorized_keys files read for `user`.
    private func authenticate(_ message: SSHMessage, user: String, blob: PublicKeyBlob, signed: Bool, lookup: AuthorizedKeysLookup, byCommand: Bool) {
        let result = KeyMatcher.match(presented: blob, candidates: lookup.keys, clientAddress: client.address, now: Int64(time(nil)))
        switch result {
        case .accepted(let entry):
            admit(message, user: user, key: entry, certificate: nil, signed: signed)
        case .notListed where byCommand:
            authenticateByCommand(message, user: user, blob: blob, signed: signed, lookup: lookup)
        case .notListed, .refused:
            let reason = lookup.read.isEmpty && result == .notListed ? "no authorized_keys file could be read" : "\(result)"
            refuse(message, user: user, fingerprint: blob.fingerprint, reason: reason, lookup: lookup)
        }
    }

    /// Holds `message` while `gather` collects what deciding it needs (users'
    /// files, which the spawner opens; the output of authorized_keys_command),
    /// which may answer at once or later on another thread; `decide` then runs
    /// with the answer on this connection's worker, unless the connection closed
    /// meanwhile. The connection reads nothing while it waits; no other
    /// connection waits with it (a home on a hung file system holds up only the
    /// logins that need it).
    private func awaitAnswer<Answer: Sendable>(
        _ message: SSHMessage, gather: (@escaping @Sendable (Answer) -> Void) -> Void,
        decide: @escaping (Connection, SSHMessage, Answer) -> Void
    ) {
        awaitingAuthorization = true
        let waiting = WaitingAuthentication(connection: self, message: message, decide: decide)
        let worker = worker
        gather { answer in
            worker.post(.perform { _ in waiting.resume(answer) })
        }
    }

    /// A key no authorized_keys file lists, with `authorized_keys_command`
    /// configured: the command's output is read as one more authorized_keys
    /// file (sshd reads the files first, then the command). The request waits
    /// off the event loop (`AuthorizedKeysCommandRun`). Any failure refuses the key.
    private func authenticateByCommand(_ message: SSHMessage, user: String, blob: PublicKeyBlob, signed: Bool, lookup: AuthorizedKeysLookup) {
        let spawner = worker.spawner
        awaitAnswer(message) { answer in
            AuthorizedKeysCommandRun.start(spawner: spawner, user: user, key: blob, completion: answer)
        } decide: { connection, message, outcome in
            connection.keysCommandAnswered(message, user: user, blob: blob, signed: signed, lookup: lookup, outcome: outcome)
        }
    }

    private func keysCommandAnswered(
        _ message: SSHMessage, user: String, blob: PublicKeyBlob, signed: Bool, lookup: AuthorizedKeysLookup,
        outcome: AuthorizedKeysCommandRun.Outcome
    ) {
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
        let (trust, store) = (worker.certificateTrust, worker.authorizedKeys)
        let principalsPattern = config.trustedUserCAKeys.isEmpty ? nil : config.authorizedPrincipalsFile
        let home = AuthorizedKeysStore.home(of: user)
        awaitAnswer(message) { answer in
            // cert-authority lines in authorized_keys, then the principals file.
            store.lookup(for: user, patterns: config.authorizedKeys) { lookup in
                trust.principals(pattern: principalsPattern, user: user, home: home) { principals in
                    answer(UserFiles(authorizedKeys: lookup, principals: principals))
                }
            }
        } decide: { connection, message, files in
            connection.authenticate(message, user: user, certificate: certificate, signed: signed, files: files, config: config)
        }
    }

    /// What a certificate login reads of a user's files.
    private struct UserFiles: Sendable {
        var authorizedKeys: AuthorizedKeysLookup
        var principals: AuthorizedPrincipalsFile?
    }

    private func authenticate(
        _ message: SSHMessage, user: String, certificate: OpenSSHCertificate, signed: Bool, files: UserFiles, config: Configuration
    ) {
        let trust = worker.certificateTrust
        let request = CertificateCheck.Request(
            certificate: certificate, user: user, clientAddress: client.address, now: Int64(time(nil)),
            authorizedKeys: files.authorizedKeys.keys, trustedCAKeys: trust.trustedCAKeys(config.trustedUserCAKeys),
            authorizedPrincipals: files.principals, revokedKeys: trust.revokedKeys(config.revokedKeys))
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

/// An authentication request held while what decides it is gathered
/// (`Connection.awaitAnswer`). Only the connection's worker thread touches the
/// connection, the message and `decide`; the box only carries them across.
private final class WaitingAuthentication<Answer>: @unchecked Sendable {
    weak var connection: Connection?
    let message: SSHMessage
    let decide: (Connection, SSHMessage, Answer) -> Void

    init(connection: Connection, message: SSHMessage, decide: @escaping (Connection, SSHMessage, Answer) -> Void) {
        self.connection = connection
        self.message = message
        self.decide = decide
    }

    /// On the worker: lets the connection read again and decides, unless it closed meanwhile.
    func resume(_ answer: Answer) {
        guard let connection else { return }
        connection.awaitingAuthorization = false
        defer { connection.worker.touched[ObjectIdentifier(connection)] = connection }
        guard !connection.closing else { return }
        decide(connection, message, answer)
    }
}

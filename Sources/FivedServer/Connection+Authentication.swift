import FivedCore
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

extension Connection {
    /// sshd's MaxAuthTries default: failed attempts before the connection is dropped.
    static let maximumAuthAttempts = 6

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
            message.refuse()
            return
        }
        guard failedAttempts < Self.maximumAuthAttempts else {
            message.refuse()
            close(reason: .tooManyAuthenticationFailures)
            return
        }
        guard state != .wrong, let bytes = message.authenticationKeyBlob, let blob = PublicKeyBlob(bytes: bytes) else {
            failed(message)
            return
        }
        if authenticatePeer(message, user: request.user, blob: blob, verified: state == .verified) { return }
        let config = worker.config.snapshot
        let candidates = worker.authorizedKeys.keys(for: request.user, patterns: config.authorizedKeys)
        let result = KeyMatcher.match(presented: blob, candidates: candidates, clientAddress: client.address, now: Int64(time(nil)))
        switch result {
        case .accepted(let entry):
            let limit = config.limits.maxConnectionsPerKey
            guard state == .verified ? takeKeyConnection(blob.fingerprint) : worker.keyUsage.takeConnection(blob.fingerprint, limit: limit) else {
                logger.info("authentication refused", metadata: [
                    "user": "\(request.user)", "fingerprint": "\(blob.fingerprint)", "client": "\(client)",
                    "reason": "max_connections_per_key (\(limit)) reached",
                ])
                failed(message)
                return
            }
            guard state == .verified else {
                worker.keyUsage.releaseConnection(blob.fingerprint)  // a probe only asks; the count is taken when it signs
                message.acceptPublicKeyProbe()  // "this key would do"
                return
            }
            caller = Caller(user: request.user, key: entry, address: client.address, port: client.port)
            message.acceptAuthentication()
            releaseStartupSlot()
            logger.info("authenticated", metadata: [
                "user": "\(request.user)", "fingerprint": "\(blob.fingerprint)", "client": "\(client)",
                "comment": "\(entry.comment)", "key_file": "\(entry.file):\(entry.line)",
            ])
        case .notListed, .refused:
            logger.info("authentication failed", metadata: [
                "user": "\(request.user)", "fingerprint": "\(blob.fingerprint)", "client": "\(client)",
                "reason": "\(result)",
            ])
            failed(message)
        }
    }

    private func failed(_ message: SSHMessage) {
        failedAttempts += 1
        message.refuse()
        if failedAttempts >= Self.maximumAuthAttempts {
            close(reason: .tooManyAuthenticationFailures)
        }
    }
}

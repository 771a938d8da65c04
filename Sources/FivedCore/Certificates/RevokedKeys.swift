/// One `revoked_keys` file, as sshd reads `RevokedKeys` (authfile.c
/// `sshkey_check_revoked`): a KRL when it starts with the KRL magic, else a list
/// of public keys, one per line (`TYPE BASE64 [COMMENT]`, blank and `#` lines
/// ignored; certificate lines revoke the key they certify).
///
/// It fails closed: a file that cannot be read (`unreadable(path:reason:)`) or
/// does not parse revokes every key, with a reason naming the file, because
/// sshd refuses all public key authentication when RevokedKeys is unusable.
/// Build it once per file change (the runtime caches it as it caches
/// authorized_keys) and query it on every authentication.
public struct RevokedKeys: Sendable, Equatable {
    /// The file, as messages name it.
    public let path: String
    private let content: Content

    private enum Content: Sendable, Equatable {
        case krl(KeyRevocationList)
        /// Plain key blobs with the `FILE:LINE` that lists each.
        case keys([[UInt8]: String])
        case unusable(FivedCoreError)
    }

    /// The largest file read, in bytes; a larger one is unusable.
    public static let maximumFileSize = 64 << 20

    /// Parses the contents of the file at `path`. Never fails: a problem makes
    /// the value revoke everything (see `problem`).
    public init(contents: [UInt8], path: String) {
        self.path = path
        guard contents.count <= Self.maximumFileSize else {
            content = .unusable(FivedCoreError(.revokedKeysMalformed, "\(path): larger than \(Self.maximumFileSize) bytes"))
            return
        }
        if KeyRevocationList.isKRL(contents) {
            do {
                content = .krl(try KeyRevocationList(bytes: contents, file: path))
            } catch {
                content = .unusable(error)
            }
            return
        }
        var keys: [[UInt8]: String] = [:]
        for (index, line) in PublicKeyLine.lines(contents).enumerated() {
            let location = "\(path):\(index + 1)"
            switch PublicKeyLine.parse(line, context: location, code: .revokedKeysMalformed) {
            case .success(nil): continue
            case .failure(let e):
                content = .unusable(e)
                return
            case .success(let fields?):
                if fields.type == "ssh-dss" || fields.type == "ssh-dss-cert-v01@openssh.com" { continue }  // no DSA key can authenticate to fived
                let blob: [UInt8]
                if OpenSSHCertificate.isCertificateType(fields.type) {
                    do {
                        blob = try OpenSSHCertificate(bytes: fields.blob, context: location).key.bytes
                    } catch {
                        content = .unusable(FivedCoreError(.revokedKeysMalformed, error.message))
                        return
                    }
                } else {
                    switch PublicKeyBlob.validate(fields.blob) {
                    case .success(let key): blob = key.bytes
                    case .failure(.malformed(let why)), .failure(.unsupportedType(let why)):
                        content = .unusable(FivedCoreError(.revokedKeysMalformed, "\(location): \(why)"))
                        return
                    }
                }
                if keys[blob] == nil { keys[blob] = location }
            }
        }
        content = .keys(keys)
    }

    /// A file that exists in the configuration but could not be read: it
    /// revokes every key, naming `path` and `reason`.
    public static func unreadable(path: String, reason: String) -> RevokedKeys {
        RevokedKeys(path: path, content: .unusable(FivedCoreError(.revokedKeysMalformed, "\(path): \(reason)")))
    }

    private init(path: String, content: Content) {
        self.path = path
        self.content = content
    }

    /// Why the file revokes every key, or nil when it parsed.
    public var problem: FivedCoreError? {
        if case .unusable(let e) = content { return e }
        return nil
    }

    /// True when the file is a KRL.
    public var isKRL: Bool {
        if case .krl = content { return true }
        return false
    }

    /// Why the plain key `key` is revoked, or nil.
    public func revocation(of key: PublicKeyBlob) -> Revocation? {
        switch content {
        case .unusable(let e): return .unusable(e)
        case .krl(let krl): return krl.revocation(of: key, file: path)
        case .keys(let keys): return keys[key.bytes].map { .listedKey(fingerprint: key.fingerprint, isCA: false, location: $0) }
        }
    }

    /// Why `certificate` is revoked, or nil: its certified key, its serial or key
    /// ID (KRL only), or its CA key, as sshd checks a certificate and then its CA.
    public func revocation(of certificate: OpenSSHCertificate) -> Revocation? {
        switch content {
        case .unusable(let e): return .unusable(e)
        case .krl(let krl): return krl.revocation(of: certificate, file: path)
        case .keys(let keys):
            if let at = keys[certificate.key.bytes] {
                return .listedKey(fingerprint: certificate.key.fingerprint, isCA: false, location: at)
            }
            if let at = keys[certificate.signatureKey.bytes] {
                return .listedKey(fingerprint: certificate.signatureKey.fingerprint, isCA: true, location: at)
            }
            return nil
        }
    }
}

extension Sequence where Element == RevokedKeys {
    /// The first file's reason to revoke the plain key `key`, or nil: what sshd's
    /// `auth_key_is_revoked` asks of every RevokedKeys file before it reads
    /// authorized_keys (auth2-pubkey.c `user_key_allowed`). `CertificateCheck`
    /// asks this itself for certificates.
    public func revocation(of key: PublicKeyBlob) -> Revocation? {
        for file in self {
            if let revocation = file.revocation(of: key) { return revocation }
        }
        return nil
    }
}

/// Why a key or certificate is revoked by a `revoked_keys` file: one log-ready
/// line naming the file (sshd: "Authentication key ... revoked by file ...").
public enum Revocation: Sendable, Equatable, CustomStringConvertible {
    /// How a KRL lists a plain key.
    public enum KeyMatch: String, Sendable, Equatable {
        /// An explicit key section (`key:` in an `ssh-keygen -k` spec).
        case key
        /// A SHA-1 hash section (`sha1:`).
        case sha1 = "SHA-1 hash"
        /// A SHA-256 hash section (`sha256:`, `hash:`).
        case sha256 = "SHA-256 hash"
    }

    /// A KRL revokes the certificate's serial number.
    case krlSerial(UInt64, file: String)
    /// A KRL revokes the certificate's key ID.
    case krlKeyID(String, file: String)
    /// A KRL lists the key (or, `isCA`, the certificate's CA key).
    case krlKey(fingerprint: String, match: KeyMatch, isCA: Bool, file: String)
    /// A text `revoked_keys` line lists the key (or, `isCA`, the CA key); `location` is `FILE:LINE`.
    case listedKey(fingerprint: String, isCA: Bool, location: String)
    /// The file could not be read or parsed, so every key is refused, as sshd
    /// refuses every key when `RevokedKeys` is unusable; the error names the file.
    case unusable(FivedCoreError)

    public var description: String {
        switch self {
        case .krlSerial(let serial, let file): return "revoked by KRL serial \(serial) in \(file)"
        case .krlKeyID(let id, let file): return "revoked by KRL key ID \"\(ServiceName.printable(id))\" in \(file)"
        case .krlKey(let fingerprint, let match, let isCA, let file):
            let what = isCA ? "CA \(fingerprint)" : "key \(fingerprint)"
            return match == .key ? "revoked by KRL: \(what) listed in \(file)" : "revoked by KRL: \(what) listed by \(match.rawValue) in \(file)"
        case .listedKey(let fingerprint, let isCA, let location):
            return "revoked: \(isCA ? "CA" : "key") \(fingerprint) listed at \(location)"
        case .unusable(let error):
            return "every key refused: revoked_keys unusable: \(error.message)"
        }
    }
}

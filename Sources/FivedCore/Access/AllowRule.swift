/// One entry of a service's `allow` list (SPEC.md, config file): who, beyond the
/// key's own authorized_keys options, may open the service.
public enum AllowRule: Hashable, Sendable, CustomStringConvertible {
    /// `SHA256:...`: the key with this fingerprint, as `ssh-keygen -l` prints it
    /// (for a certificate, its certified key).
    case fingerprint(String)
    /// `user:NAME`: any key used to log in as this SSH user name.
    case user(String)
    /// `principal:NAME`: a certificate whose matched principal is NAME.
    case principal(String)
    /// `key-id:ID`: a certificate whose key ID is ID.
    case keyID(String)
    /// `ca:SHA256:...`: a certificate signed by the CA with this fingerprint.
    case certificateAuthority(String)
    /// Anything else: the key whose authorized_keys comment is exactly this text.
    case comment(String)

    /// Parses one allow-list entry. Empty entries, and prefixed entries with
    /// nothing (or no valid fingerprint) after the prefix, are rejected.
    public init(parsing raw: String, context: String) throws(FivedCoreError) {
        if raw.isEmpty {
            throw FivedCoreError(.invalidAllowRule, "\(context): empty allow entry")
        }
        if raw.hasPrefix("SHA256:") {
            self = .fingerprint(try Self.fingerprint(raw, context: context))
        } else if raw.hasPrefix("ca:") {
            let body = String(raw.dropFirst("ca:".count))
            guard body.hasPrefix("SHA256:") else {
                throw FivedCoreError(
                    .invalidAllowRule, "\(context): '\(ServiceName.printable(raw))': write ca:SHA256:... with the CA key's fingerprint")
            }
            self = .certificateAuthority(try Self.fingerprint(body, context: context))
        } else if let (prefix, name) = Self.split(raw, prefixes: ["user:", "principal:", "key-id:"]) {
            guard !name.isEmpty else {
                throw FivedCoreError(
                    .invalidAllowRule, "\(context): '\(prefix)' needs a \(prefix == "key-id:" ? "key ID" : prefix == "user:" ? "user name" : "principal")")
            }
            switch prefix {
            case "user:": self = .user(name)
            case "principal:": self = .principal(name)
            default: self = .keyID(name)
            }
        } else {
            self = .comment(raw)
        }
    }

    private static func split(_ raw: String, prefixes: [String]) -> (String, String)? {
        for prefix in prefixes where raw.hasPrefix(prefix) { return (prefix, String(raw.dropFirst(prefix.count))) }
        return nil
    }

    /// `SHA256:` and 43 base64 characters (32 bytes of SHA-256, unpadded).
    private static func fingerprint(_ raw: String, context: String) throws(FivedCoreError) -> String {
        let body = raw.dropFirst("SHA256:".count)
        guard body.count == 43, body.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }) else {
            throw FivedCoreError(
                .invalidAllowRule,
                "\(context): '\(ServiceName.printable(raw))' is not a SHA256 fingerprint as ssh-keygen -l prints it")
        }
        return raw
    }

    public var description: String {
        switch self {
        case .fingerprint(let f): return f
        case .user(let u): return "user:\(u)"
        case .principal(let p): return "principal:\(p)"
        case .keyID(let id): return "key-id:\(id)"
        case .certificateAuthority(let f): return "ca:\(f)"
        case .comment(let c): return c
        }
    }
}

/// One entry of a service's `allow` list (SPEC.md, config file): who, beyond the
/// key's own authorized_keys options, may open the service.
public enum AllowRule: Hashable, Sendable, CustomStringConvertible {
    /// `SHA256:...`: the key with this fingerprint, as `ssh-keygen -l` prints it.
    case fingerprint(String)
    /// `user:NAME`: any key used to log in as this SSH user name.
    case user(String)
    /// Anything else: the key whose authorized_keys comment is exactly this text.
    case comment(String)

    /// Parses one allow-list entry. Empty entries are rejected.
    public init(parsing raw: String, context: String) throws(FivedCoreError) {
        if raw.isEmpty {
            throw FivedCoreError(.invalidAllowRule, "\(context): empty allow entry")
        }
        if raw.hasPrefix("SHA256:") {
            let body = raw.dropFirst("SHA256:".count)
            // 32 bytes of SHA-256 in unpadded base64 is exactly 43 characters.
            guard body.count == 43, body.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }) else {
                throw FivedCoreError(
                    .invalidAllowRule,
                    "\(context): '\(ServiceName.printable(raw))' is not a SHA256 fingerprint as ssh-keygen -l prints it")
            }
            self = .fingerprint(raw)
        } else if raw.hasPrefix("user:") {
            let name = raw.dropFirst("user:".count)
            guard !name.isEmpty else {
                throw FivedCoreError(.invalidAllowRule, "\(context): 'user:' needs a user name")
            }
            self = .user(String(name))
        } else {
            self = .comment(raw)
        }
    }

    public var description: String {
        switch self {
        case .fingerprint(let f): return f
        case .user(let u): return "user:\(u)"
        case .comment(let c): return c
        }
    }
}

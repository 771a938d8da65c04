/// Decides, at authentication time, which authorized_keys line (if any) admits a
/// presented key, as sshd does: lines are tried in order, and the first line
/// that lists the key and whose `from=` and `expiry-time=` admit the connection
/// wins. A line that lists the key but refuses the connection does not stop the
/// search.
///
/// This is for plain keys. A `cert-authority` line never admits its own key
/// used plainly (sshd skips it too); certificates are decided by
/// `CertificateCheck`, which takes the same candidate lines.
public enum KeyMatcher {
    /// Why one line that lists the key refused the connection.
    public struct LineRefusal: Sendable, Equatable, CustomStringConvertible {
        /// What the line's options objected to.
        public enum Reason: Sendable, Equatable {
            /// The client address is not in the line's `from=` list.
            case fromMismatch(pattern: String)
            /// The line's `expiry-time` (seconds since the epoch) has passed.
            case expired(at: Int64)
        }
        /// The line's `file:line`.
        public var location: String
        /// What refused.
        public var reason: Reason

        public var description: String {
            switch reason {
            case .fromMismatch(let pattern): return "\(location): client address not in from=\"\(pattern)\""
            case .expired(let at): return "\(location): key expired at \(at) (seconds since the epoch)"
            }
        }
    }

    /// The outcome of `match`.
    public enum Outcome: Sendable, Equatable, CustomStringConvertible {
        /// This line admits the key; its options govern the connection.
        case accepted(AuthorizedKey)
        /// No line lists the key.
        case notListed
        /// Lines list the key, but each refused the connection (in file order).
        case refused([LineRefusal])

        public var description: String {
            switch self {
            case .accepted(let key): return "accepted by \(key.location)"
            case .notListed: return "key not listed in any authorized_keys file"
            case .refused(let reasons): return "key refused: " + reasons.map(\.description).joined(separator: "; ")
            }
        }
    }

    /// Finds the line admitting `presented` from `clientAddress` at `now` (seconds
    /// since the epoch) among `candidates`, which are the keys of every
    /// authorized_keys file in the order sshd would read them.
    public static func match(
        presented: PublicKeyBlob, candidates: [AuthorizedKey], clientAddress: String, now: Int64
    ) -> Outcome {
        var refusals: [LineRefusal] = []
        for key in candidates where key.blob == presented && !key.options.certAuthority {
            // sshd checks expiry first, then from=.
            if let expiry = key.options.expiryTime, expiry < now {
                refusals.append(LineRefusal(location: key.location, reason: .expired(at: expiry)))
                continue
            }
            if let from = key.options.from, !from.matches(address: clientAddress) {
                refusals.append(LineRefusal(location: key.location, reason: .fromMismatch(pattern: from.text)))
                continue
            }
            return .accepted(key)
        }
        return refusals.isEmpty ? .notListed : .refused(refusals)
    }
}

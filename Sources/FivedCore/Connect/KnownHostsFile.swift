import Crypto

/// Reads an OpenSSH known_hosts file the way OpenSSH's `hostkeys_foreach_file`
/// (hostfile.c) does: plain and hashed (`|1|salt|hash`) host fields, comma lists,
/// `*`/`?` wildcards, `!` negation, and the `@cert-authority` and `@revoked`
/// markers (`check_markers`: at most one marker, either of those two; a line with
/// any other marker is skipped).
///
/// fived-connect decides host keys from this reading (`HostKeyCheck`), not from
/// libssh's: `ssh_session_is_known_server` in libssh 0.10.6 skips every marker
/// line (knownhosts.c:272-276, "we do not completely support them anyway"), and
/// tests each comma-separated pattern of a host field on its own
/// (knownhosts.c:683-710), so a negated pattern never excludes a host.
public enum KnownHostsFile {
    /// One line that names the host.
    public struct Entry: Sendable, Equatable {
        /// A known_hosts marker (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").
        public enum Marker: Sendable, Equatable {
            /// A plain line: the host's own key.
            case none
            /// `@cert-authority`: the key is a CA that signs the host's certificates,
            /// never the host's own key.
            case certificateAuthority
            /// `@revoked`: the key must never be accepted for the host.
            case revoked
        }

        /// The line number, from 1.
        public let line: Int
        public let marker: Marker
        /// The key type field as written (e.g. `ssh-ed25519`).
        public let keyType: String
        /// The key blob (RFC 4253 §6.6), or nil when the field is not base64.
        /// For a certificate in a `@revoked` line, the certified key: OpenSSH
        /// compares revoked keys with `sshkey_equal_public`, which ignores the
        /// certificate around a key.
        public let blob: [UInt8]?

        /// `SHA256:...` of the blob, as `ssh-keygen -l` prints it; nil when unreadable.
        public var fingerprint: String? {
            blob.map { "SHA256:" + Base64.encode(Array(SHA256.hash(data: $0)), padded: false) }
        }
    }

    /// The plain entries (the host's own keys) of `text` that name `hostName`
    /// on `port` (`[host]:port`, or plain `host` on port 22).
    public static func entries(in text: String, hostName: String, port: UInt16) -> [Entry] {
        lines(in: text, hostName: hostName, port: port).filter { $0.marker == .none }
    }

    /// Every line of `text` that names `hostName` on `port`, markers included.
    public static func lines(in text: String, hostName: String, port: UInt16) -> [Entry] {
        let name = port == 22 ? hostName.lowercased() : "[\(hostName.lowercased())]:\(port)"
        var result: [Entry] = []
        var number = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            var fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })[...]
            guard let first = fields.first, !first.hasPrefix("#") else { continue }
            var marker = Entry.Marker.none
            if first.hasPrefix("@") {
                switch first {
                case "@cert-authority": marker = .certificateAuthority
                case "@revoked": marker = .revoked
                default: continue
                }
                fields = fields.dropFirst()
                // hostfile.c check_markers: "Only one marker is allowed".
                if fields.first?.hasPrefix("@") == true { continue }
            }
            guard fields.count >= 3 else { continue }
            let hosts = fields[fields.startIndex]
            let type = fields[fields.startIndex + 1]
            let base64 = fields[fields.startIndex + 2]
            guard hostField(hosts, matches: name) else { continue }
            var blob = Base64.decode(base64)
            if blob != nil, marker == .revoked, OpenSSHCertificate.isCertificateType(type) {
                blob = (try? OpenSSHCertificate(base64: base64))?.key.bytes
            }
            result.append(Entry(line: number, marker: marker, keyType: String(type), blob: blob))
        }
        return result
    }

    /// hostfile.c `match_maybe_hashed`: a hashed field is the HMAC-SHA1 of the
    /// name; a pattern list matches when some pattern matches and no negated one
    /// does (match.c `match_hostname`).
    static func hostField(_ field: Substring, matches name: String) -> Bool {
        if field.hasPrefix("|1|") {
            let parts = field.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 4, let salt = Base64.decode(parts[2]), let hash = Base64.decode(parts[3]) else { return false }
            let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Array(name.utf8), using: SymmetricKey(data: salt))
            return Array(mac) == hash
        }
        var matched = false
        for pattern in field.split(separator: ",") {
            if pattern.hasPrefix("!") {
                if Wildcard.matches(name, pattern: pattern.dropFirst().lowercased()) { return false }
            } else if Wildcard.matches(name, pattern: pattern.lowercased()) {
                matched = true
            }
        }
        return matched
    }
}

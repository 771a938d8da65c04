import Crypto

/// Reads an OpenSSH known_hosts file to tell the user which key is on record
/// for a host when libssh reports a changed key (libssh says only "changed").
/// Handles plain and hashed (`|1|salt|hash`) host fields, comma lists, `*`/`?`
/// wildcards and `!` negation; marker lines (`@cert-authority`, `@revoked`)
/// are skipped.
public enum KnownHostsFile {
    /// One recorded key for the host.
    public struct Entry: Sendable, Equatable {
        public let line: Int
        public let keyType: String
        /// `SHA256:...`, or nil when the key blob is not one fived can decode.
        public let fingerprint: String?
    }

    /// The entries of `text` that name `hostName` on `port` (`[host]:port`, or
    /// plain `host` on port 22).
    public static func entries(in text: String, hostName: String, port: UInt16) -> [Entry] {
        let name = port == 22 ? hostName.lowercased() : "[\(hostName.lowercased())]:\(port)"
        var result: [Entry] = []
        var number = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 3, !fields[0].hasPrefix("#"), !fields[0].hasPrefix("@") else { continue }
            guard hostField(fields[0], matches: name) else { continue }
            let blob = PublicKeyBlob(base64: fields[2])
            result.append(Entry(line: number, keyType: String(fields[1]), fingerprint: blob?.fingerprint))
        }
        return result
    }

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

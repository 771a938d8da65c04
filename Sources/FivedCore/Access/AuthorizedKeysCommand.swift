/// sshd's `AuthorizedKeysCommand` as fived runs it (auth2-pubkeyfile.c
/// `user_key_command_allowed2`): the configured string split on spaces into the
/// program and its arguments, then in each argument `%u` the user, `%h` the
/// home directory, `%t` the key type, `%f` the key's fingerprint, `%k` the key
/// in base64 and `%%` a percent sign.
public enum AuthorizedKeysCommand {
    /// The argv for `command` (checked by the configuration loader: an absolute
    /// program path, only the tokens above).
    public static func argv(_ command: String, user: String, home: String, keyType: String, fingerprint: String, keyBase64: String) -> [String] {
        command.split(separator: " ", omittingEmptySubsequences: true).map { word in
            var out = ""
            var iterator = word.makeIterator()
            while let c = iterator.next() {
                guard c == "%" else {
                    out.append(c)
                    continue
                }
                switch iterator.next() {
                case "u": out += user
                case "h": out += home
                case "t": out += keyType
                case "f": out += fingerprint
                case "k": out += keyBase64
                case "%": out += "%"
                case let other?: out += "%" + String(other)
                case nil: out += "%"
                }
            }
            return out
        }
    }

    /// How long the command may run before it is killed and refused, in ms.
    public static let timeLimitMilliseconds: Int64 = 5000
    /// The most output read from it, in bytes; more refuses (fail closed).
    public static let maximumOutput = 1 << 20
}

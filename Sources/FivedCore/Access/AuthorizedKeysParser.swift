import Foundation

/// Reads OpenSSH authorized_keys files as sshd(8) does ("AUTHORIZED_KEYS FILE
/// FORMAT"): one key per line as `[options] keytype base64 [comment]`, blank lines
/// and `#` lines ignored.
///
/// A line fived cannot honour exactly as sshd would (an unknown option, a
/// malformed key, a certificate listed as a key) is left out and reported as a
/// problem naming the file and line; the other lines still count.
///
/// A `cert-authority` line (with or without `principals="..."`) is honoured: its
/// key is a CA whose user certificates `CertificateCheck` accepts under the
/// line's options; `KeyMatcher` never admits the CA key itself through it.
public enum AuthorizedKeysParser {
    /// The longest line accepted, in bytes. sshd(8) documents 8 KiB; this leaves
    /// room for long `from=` lists while a 16384-bit RSA key needs under 3 KiB.
    public static let maximumLineLength = 16384

    /// Parses one line (without its newline; a trailing CR is ignored). Returns nil
    /// for blank and comment lines, the key for a line fived honours, and an
    /// error naming `file:lineNumber` otherwise. `timeZone` interprets
    /// `expiry-time` values without `Z`.
    public static func parseLine(
        _ line: Substring, file: String, lineNumber: Int, timeZone: TimeZone = .current
    ) -> Result<AuthorizedKey?, FivedCoreError> {
        let context = "\(file):\(lineNumber)"
        func failure(_ code: FivedCoreError.Code, _ reason: String) -> Result<AuthorizedKey?, FivedCoreError> {
            .failure(FivedCoreError(code, "\(context): \(reason)"))
        }
        var bytes = Array(line.utf8)
        guard bytes.count <= maximumLineLength + 1 else {
            return failure(.authorizedKeyMalformed, "line longer than \(maximumLineLength) bytes")
        }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard bytes.count <= maximumLineLength else {
            return failure(.authorizedKeyMalformed, "line longer than \(maximumLineLength) bytes")
        }
        guard !bytes.contains(0) else { return failure(.authorizedKeyMalformed, "line contains a NUL byte") }

        var scanner = LineScanner(bytes: bytes)
        scanner.skipBlanks()
        guard let first = scanner.peekToken() else { return .success(nil) }
        if first.first == UInt8(ascii: "#") { return .success(nil) }

        // sshd first tries the line as a key; only when that fails is the first
        // field options. A known key type name can never be a valid option.
        var optionsField: [UInt8]? = nil
        if !isKeyTypeName(first) {
            guard let field = scanner.optionsField() else {
                return failure(.authorizedKeyMalformed, "unterminated double quote in the options field")
            }
            optionsField = field
            scanner.skipBlanks()
            let next = scanner.peekToken()
            if next == nil || !isKeyTypeName(next!) {
                if let next, field.contains(where: { $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: ",") }) {
                    let shown = ServiceName.printable(String(decoding: next, as: UTF8.self))
                    return failure(.authorizedKeyMalformed, "'\(shown)' after the options is not a key type sshd knows")
                }
                let shown = ServiceName.printable(String(decoding: first, as: UTF8.self))
                return failure(.authorizedKeyMalformed, "'\(shown)' is not a key type sshd knows (expected e.g. ssh-ed25519)")
            }
        }

        let typeToken = String(decoding: scanner.token()!, as: UTF8.self)
        if typeToken.hasSuffix("-cert-v01@openssh.com") {
            return failure(
                .authorizedKeyUnsupported,
                "\(typeToken): a certificate is not honoured as a key; list its CA with cert-authority, or the plain key")
        }
        if typeToken == "ssh-dss" {
            return failure(.authorizedKeyUnsupported, "ssh-dss (DSA) keys are not honoured: OpenSSH no longer accepts them")
        }
        scanner.skipBlanks()
        guard let base64 = scanner.token() else { return failure(.authorizedKeyMalformed, "\(typeToken) with no key after it") }
        guard let raw = Base64.decode(String(decoding: base64, as: UTF8.self)) else {
            return failure(.authorizedKeyMalformed, "the \(typeToken) key is not valid base64")
        }
        let blob: PublicKeyBlob
        switch PublicKeyBlob.validate(raw) {
        case .success(let b): blob = b
        case .failure(.malformed(let why)): return failure(.authorizedKeyMalformed, why)
        case .failure(.unsupportedType(let t)):
            return failure(.authorizedKeyMalformed, "the key is of type '\(ServiceName.printable(t))', not \(typeToken)")
        }
        guard blob.keyType == typeToken else {
            return failure(.authorizedKeyMalformed, "the key is of type \(blob.keyType), not \(typeToken) as the line says")
        }
        scanner.skipBlanks()
        let comment = String(decoding: scanner.rest().reversed().drop(while: { $0 == 0x20 || $0 == 0x09 }).reversed(), as: UTF8.self)

        var options = KeyOptions()
        if let optionsField {
            do {
                options = try KeyOptions(parsing: String(decoding: optionsField, as: UTF8.self), context: context, timeZone: timeZone)
            } catch {
                return .failure(error)
            }
        }
        if options.principals != nil && !options.certAuthority {
            return failure(.authorizedKeyMalformed, "principals= without cert-authority: sshd refuses such a line")
        }
        return .success(AuthorizedKey(blob: blob, comment: comment, options: options, file: file, line: lineNumber))
    }

    /// Parses a whole file: the honoured keys in file order, and one problem per
    /// line that is not honoured. Lines end at LF (CRLF also works).
    public static func parseFile(
        _ contents: String, path: String, timeZone: TimeZone = .current
    ) -> (keys: [AuthorizedKey], problems: [FivedCoreError]) {
        var keys: [AuthorizedKey] = []
        var problems: [FivedCoreError] = []
        // Split on bytes: in Swift "\r\n" is one Character, so splitting the
        // String on "\n" would miss CRLF line ends.
        var lineNumber = 0
        for raw in contents.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = Substring(raw)
            switch parseLine(line, file: path, lineNumber: lineNumber, timeZone: timeZone) {
            case .success(let key?): keys.append(key)
            case .success(nil): break
            case .failure(let e): problems.append(e)
            }
        }
        return (keys, problems)
    }

    /// Expands sshd's AuthorizedKeysFile tokens: `%u` the user name, `%h` the
    /// user's home directory, `%%` a percent sign. Returns nil when the pattern
    /// needs `%h` and `home` is nil, has any other `%` token, or when `user`
    /// could escape the directory (empty, `.`, `..`, or containing `/` or NUL):
    /// fived's user names come from the client, not from the password database.
    public static func expandPath(_ pattern: String, user: String, home: String?) -> String? {
        var out = ""
        var iterator = pattern.unicodeScalars.makeIterator()
        while let c = iterator.next() {
            guard c == "%" else {
                out.unicodeScalars.append(c)
                continue
            }
            switch iterator.next() {
            case "%": out += "%"
            case "u":
                guard !user.isEmpty, user != ".", user != "..", !user.contains("/"), !user.utf8.contains(0) else { return nil }
                out += user
            case "h":
                guard let home, !home.isEmpty else { return nil }
                out += home
            default: return nil
            }
        }
        return out
    }

    /// Key type names the parser recognises as the key field (so they are never
    /// read as options): the supported ones, DSA and certificate types.
    static func isKeyTypeName(_ token: [UInt8]) -> Bool {
        let name = String(decoding: token, as: UTF8.self)
        return PublicKeyBlob.supportedKeyTypes.contains(name) || name == "ssh-dss" || name.hasSuffix("-cert-v01@openssh.com")
    }
}

/// Splits an authorized_keys line into blank-separated fields, with sshd's
/// quote rules for the options field.
private struct LineScanner {
    let bytes: [UInt8]
    var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    private static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    mutating func skipBlanks() {
        while index < bytes.count, Self.isBlank(bytes[index]) { index += 1 }
    }

    func peekToken() -> [UInt8]? {
        var end = index
        while end < bytes.count, !Self.isBlank(bytes[end]) { end += 1 }
        return end > index ? Array(bytes[index..<end]) : nil
    }

    mutating func token() -> [UInt8]? {
        guard let t = peekToken() else { return nil }
        index += t.count
        return t
    }

    /// sshd's `sshkey_advance_past_options`: up to the first blank outside double
    /// quotes, `\"` not counting as a quote. Nil when a quote is left open.
    mutating func optionsField() -> [UInt8]? {
        let start = index
        var quoted = false
        while index < bytes.count, quoted || !Self.isBlank(bytes[index]) {
            if bytes[index] == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\"") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "\"") {
                quoted.toggle()
            }
            index += 1
        }
        return quoted ? nil : Array(bytes[start..<index])
    }

    func rest() -> [UInt8] { Array(bytes[index...]) }
}

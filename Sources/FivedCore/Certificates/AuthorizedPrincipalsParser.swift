import Foundation

/// One line of an authorized principals file: a principal name that, found in
/// a certificate signed by a `trusted_user_ca_keys` CA, admits the login, with
/// the authorized_keys options that then apply.
public struct AuthorizedPrincipal: Sendable, Equatable {
    /// The principal, compared byte for byte with the certificate's.
    public let principal: String
    /// The line's options (`from=`, `expiry-time=`, `restrict`, `command=`, ...).
    public let options: KeyOptions
    /// The file the line was read from.
    public let file: String
    /// The line's number in `file`, from 1.
    public let line: Int

    /// A principal as read from `file` at `line`.
    public init(principal: String, options: KeyOptions, file: String, line: Int) {
        self.principal = principal
        self.options = options
        self.file = file
        self.line = line
    }

    /// `file:line`, as error and log messages name the line.
    public var location: String { "\(file):\(line)" }
}

/// The configured `authorized_principals_file` as read for one user: its
/// (expanded) path and its honoured lines. A file that does not exist or cannot
/// be read has no lines, and then no certificate is accepted through
/// `trusted_user_ca_keys`, as sshd behaves with `AuthorizedPrincipalsFile`.
public struct AuthorizedPrincipalsFile: Sendable, Equatable {
    /// The path, as messages name it.
    public var path: String
    /// The honoured lines, in file order.
    public var entries: [AuthorizedPrincipal]

    /// A principals file read from `path`.
    public init(path: String, entries: [AuthorizedPrincipal]) {
        self.path = path
        self.entries = entries
    }
}

/// Reads authorized principals files as sshd does (auth2-pubkeyfile.c
/// `auth_process_principals`, `auth_check_principals_line`): leading blanks
/// skipped, everything from the first `#` dropped, blank lines ignored; a line
/// with a blank in it is `OPTIONS PRINCIPAL`, where OPTIONS is the first field
/// (authorized_keys options, quotes respected, parsed as `KeyOptions`) and
/// PRINCIPAL the text after the last space (or, with no space, the last tab);
/// otherwise the whole line is the principal.
public enum AuthorizedPrincipalsParser {
    /// The longest line accepted, in bytes, as for authorized_keys.
    public static let maximumLineLength = AuthorizedKeysParser.maximumLineLength

    /// Parses a whole file: the honoured lines in order, and one problem per line
    /// whose options do not parse (sshd skips such a line). `timeZone`
    /// interprets `expiry-time` values without `Z`.
    public static func parseFile(
        _ contents: [UInt8], path: String, timeZone: TimeZone = .current
    ) -> (entries: [AuthorizedPrincipal], problems: [FivedCoreError]) {
        var entries: [AuthorizedPrincipal] = []
        var problems: [FivedCoreError] = []
        for (index, raw) in contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let context = "\(path):\(index + 1)"
            func problem(_ why: String) { problems.append(FivedCoreError(.authorizedPrincipalsMalformed, "\(context): \(why)")) }
            guard raw.count <= maximumLineLength else {
                problem("line longer than \(maximumLineLength) bytes")
                continue
            }
            var line = Array(raw)
            guard !line.contains(0) else {
                problem("line contains a NUL byte")
                continue
            }
            if let hash = line.firstIndex(of: UInt8(ascii: "#")) { line.removeSubrange(hash...) }
            let isBlank = { (b: UInt8) in b == 0x20 || b == 0x09 || b == 0x0D }
            let trimmed = Array(line.drop(while: isBlank).reversed().drop(while: isBlank).reversed())
            guard !trimmed.isEmpty else { continue }
            var options = KeyOptions()
            var principal = trimmed
            // sshd: the last space, or failing one the last tab, ends the options.
            if let lastBlank = trimmed.lastIndex(of: 0x20) ?? trimmed.lastIndex(of: 0x09) {
                principal = Array(trimmed[(lastBlank + 1)...].drop(while: { $0 == 0x20 || $0 == 0x09 }))
                let field = Self.optionsField(trimmed)
                do {
                    options = try KeyOptions(parsing: String(decoding: field, as: UTF8.self), context: context, timeZone: timeZone)
                } catch {
                    problems.append(FivedCoreError(.authorizedPrincipalsMalformed, error.message))
                    continue
                }
            }
            guard let text = String(validating: principal, as: UTF8.self) else {
                problem("the principal is not UTF-8")
                continue
            }
            entries.append(AuthorizedPrincipal(principal: text, options: options, file: path, line: index + 1))
        }
        return (entries, problems)
    }

    /// The options field as `sshauthopt_parse` consumes it: up to the first
    /// blank outside double quotes (`\"` is not a quote).
    private static func optionsField(_ line: [UInt8]) -> ArraySlice<UInt8> {
        var quoted = false
        var i = 0
        while i < line.count, quoted || (line[i] != 0x20 && line[i] != 0x09) {
            if line[i] == UInt8(ascii: "\\"), i + 1 < line.count, line[i + 1] == UInt8(ascii: "\"") {
                i += 1
            } else if line[i] == UInt8(ascii: "\"") {
                quoted.toggle()
            }
            i += 1
        }
        return line[..<i]
    }
}

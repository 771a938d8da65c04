/// The subset of ssh_config(5) that fived-connect reads: the file split into
/// `Host` / `Match` sections of keyword lines, so that `lines(for:)` can give the
/// lines that apply to one host in file order (ssh's "first value wins" is
/// applied by `ClientOptions`).
///
/// libssh's own parser ignores several keys and reads the password database for
/// the home directory, so fived-connect parses the file itself and sets every
/// libssh option explicitly.
public struct SSHConfigFile: Sendable, Equatable {
    /// One `Keyword value...` line; `keyword` is lowercased, as ssh compares them.
    public struct Line: Sendable, Equatable {
        public let keyword: String
        public let arguments: [String]
        /// Where it came from, for messages: "FILE:LINE" or "-o".
        public let origin: String

        public init(keyword: String, arguments: [String], origin: String) {
            self.keyword = keyword
            self.arguments = arguments
            self.origin = origin
        }

        /// The arguments joined by one space (the value of one-argument keys).
        public var value: String { arguments.joined(separator: " ") }
    }

    /// Which hosts a section applies to.
    public enum Condition: Sendable, Equatable {
        /// Lines before the first Host or Match, and `Match all`.
        case always
        /// `Host pattern...`: `*` and `?` wildcards, `!` negates.
        case host([String])
        /// A `Match` with criteria fived-connect does not evaluate: never applies.
        case unsupportedMatch(String)
    }

    public struct Section: Sendable, Equatable {
        public let condition: Condition
        public var lines: [Line]
    }

    public let sections: [Section]
    /// Things a user may want to know (`Include` and `Match` not followed), for -v.
    public let notes: [String]

    /// Parses `text`; `path` names the file in messages.
    public init(text: String, path: String) throws(FivedCoreError) {
        var sections = [Section(condition: .always, lines: [])]
        var notes: [String] = []
        var number = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let origin = "\(path):\(number)"
            guard let (keyword, arguments) = try Self.tokenize(rawLine, origin: origin) else { continue }
            switch keyword {
            case "host":
                guard !arguments.isEmpty else {
                    throw FivedCoreError(.clientConfigSyntax, "\(origin): Host needs at least one pattern")
                }
                sections.append(Section(condition: .host(arguments), lines: []))
            case "match":
                if arguments.count == 1 && arguments[0].lowercased() == "all" {
                    sections.append(Section(condition: .always, lines: []))
                } else {
                    notes.append("\(origin): 'Match \(arguments.joined(separator: " "))' is not supported by fived-connect; its lines are skipped")
                    sections.append(Section(condition: .unsupportedMatch(arguments.joined(separator: " ")), lines: []))
                }
            case "include":
                notes.append("\(origin): Include is not followed by fived-connect")
            default:
                sections[sections.count - 1].lines.append(Line(keyword: keyword, arguments: arguments, origin: origin))
            }
        }
        self.sections = sections
        self.notes = notes
    }

    /// The lines that apply to `host` (the name as typed, before HostName), in file order.
    public func lines(for host: String) -> [Line] {
        sections.filter { Self.applies($0.condition, to: host) }.flatMap(\.lines)
    }

    /// ssh's Host matching: some positive pattern matches and no negated one does.
    public static func applies(_ condition: Condition, to host: String) -> Bool {
        switch condition {
        case .always: return true
        case .unsupportedMatch: return false
        case .host(let patterns):
            let name = host.lowercased()
            var matched = false
            for pattern in patterns {
                if pattern.hasPrefix("!") {
                    if Wildcard.matches(name, pattern: pattern.dropFirst().lowercased()) { return false }
                } else if Wildcard.matches(name, pattern: pattern.lowercased()) {
                    matched = true
                }
            }
            return matched
        }
    }

    /// Splits one line into a lowercased keyword and its arguments: `Key value`,
    /// `Key=value`, `Key = value`; double quotes group words; nil for blank and
    /// `#` comment lines.
    static func tokenize(_ raw: Substring, origin: String) throws(FivedCoreError) -> (String, [String])? {
        var line = raw
        if line.hasSuffix("\r") { line = line.dropLast() }
        let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
        if trimmed.isEmpty || trimmed.hasPrefix("#") { return nil }
        // The keyword ends at whitespace or '='.
        guard let end = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" || $0 == "=" }) else {
            throw FivedCoreError(.clientConfigSyntax, "\(origin): '\(DisplayText.escaped(trimmed))' has no value")
        }
        let keyword = trimmed[..<end].lowercased()
        var rest = trimmed[end...].drop(while: { $0 == " " || $0 == "\t" })
        if rest.first == "=" { rest = rest.dropFirst().drop(while: { $0 == " " || $0 == "\t" }) }
        var arguments: [String] = []
        var current = ""
        var inQuotes = false
        var hasWord = false
        for ch in rest {
            if inQuotes {
                if ch == "\"" { inQuotes = false } else { current.append(ch) }
                continue
            }
            switch ch {
            case "\"":
                inQuotes = true
                hasWord = true
            case " ", "\t":
                if hasWord { arguments.append(current); current = ""; hasWord = false }
            case "#" where !hasWord:
                // A word starting with '#' begins a trailing comment, as in OpenSSH 8.x+.
                if !arguments.isEmpty || hasWord { return (keyword, arguments) }
                current.append(ch)
                hasWord = true
            default:
                current.append(ch)
                hasWord = true
            }
        }
        if inQuotes {
            throw FivedCoreError(.clientConfigSyntax, "\(origin): unterminated quote in \(keyword)")
        }
        if hasWord { arguments.append(current) }
        guard !arguments.isEmpty else {
            throw FivedCoreError(.clientConfigSyntax, "\(origin): \(keyword) has no value")
        }
        return (keyword, arguments)
    }
}

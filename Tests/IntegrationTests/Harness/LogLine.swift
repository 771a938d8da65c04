import Foundation

/// One line of fived's log: `TIMESTAMP LEVEL MESSAGE key=value key="value with spaces" ...`.
struct LogLine: Sendable, CustomStringConvertible {
    let timestamp: String
    let level: String
    let message: String
    let fields: [String: String]
    let raw: String

    subscript(key: String) -> String? { fields[key] }

    /// When fived logged it (its `TIMESTAMP`, UTC with milliseconds): for timing
    /// what fived did by its own clock, not by when a test got round to reading.
    var date: Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: timestamp)
    }

    var description: String { raw }

    /// Parses one line; nil for a line that does not have at least a timestamp and a level.
    init?(_ line: some StringProtocol) {
        let raw = String(line)
        let tokens = LogLine.tokenize(raw)
        guard tokens.count >= 2 else { return nil }
        timestamp = tokens[0]
        level = tokens[1]
        var messageWords: [String] = []
        var fields: [String: String] = [:]
        for token in tokens.dropFirst(2) {
            if let (key, value) = LogLine.keyValue(token) {
                fields[key] = value
            } else if fields.isEmpty {
                messageWords.append(LogLine.unquote(token))
            }
        }
        message = messageWords.joined(separator: " ")
        self.fields = fields
        self.raw = raw
    }

    /// Splits on spaces outside double quotes; quotes stay in the tokens.
    private static func tokenize(_ line: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" && quoted {
                current.append(character)
                escaped = true
            } else if character == "\"" {
                current.append(character)
                quoted.toggle()
            } else if character == " " && !quoted {
                if !current.isEmpty { tokens.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }

    private static func keyValue(_ token: String) -> (String, String)? {
        guard let equals = token.firstIndex(of: "="), equals != token.startIndex else { return nil }
        let key = token[..<equals]
        guard key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }),
            key.first!.isLetter || key.first == "_"
        else { return nil }
        return (String(key), unquote(String(token[token.index(after: equals)...])))
    }

    private static func unquote(_ text: String) -> String {
        guard text.count >= 2, text.first == "\"", text.last == "\"" else { return text }
        var result = ""
        var escaped = false
        for character in text.dropFirst().dropLast() {
            if escaped {
                switch character {
                case "n": result.append("\n")
                case "t": result.append("\t")
                default: result.append(character)
                }
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        return result
    }
}

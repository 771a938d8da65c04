/// Finds the line on which a key of a TOML document is written, so that errors
/// found after parsing can say "fived.toml:12:". TOMLKit reports positions only
/// for syntax errors, so this re-reads the text: table headers, `key = value`
/// lines and dotted keys. It is a best effort for messages only; when it cannot
/// tell, it answers nil and the message names the file and key without a line.
struct TOMLKeyLocator {
    private struct Entry {
        var path: [String]
        var line: Int
        var isHeader: Bool
    }

    private var entries: [Entry] = []

    /// Indexes the keys of `text`.
    init(text: String) {
        var header: [String] = []
        // The closing delimiter of a multi-line string we are inside, if any.
        var openString: String? = nil
        // Split on scalars: as Characters, "\r\n" is one grapheme and never equals "\n".
        for (index, scalars) in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = Substring(scalars)
            if let delimiter = openString {
                if line.ranges(of: delimiter).count % 2 == 1 { openString = nil }
                continue
            }
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.first == "[" {
                let inner = trimmed.dropFirst(trimmed.hasPrefix("[[") ? 2 : 1)
                if let (path, rest) = Self.keyPath(inner), rest.first == "]" {
                    header = path
                    entries.append(Entry(path: path, line: index + 1, isHeader: true))
                }
                continue
            }
            guard let (path, rest) = Self.keyPath(trimmed), rest.first == "=" else { continue }
            entries.append(Entry(path: header + path, line: index + 1, isHeader: false))
            let value = rest.dropFirst()
            for delimiter in ["\"\"\"", "'''"] where value.ranges(of: delimiter).count % 2 == 1 {
                openString = delimiter
                break
            }
        }
    }

    /// The line of `path`: where it is set or its table header; else the first line
    /// inside it; else the `key = value` line of the inline table or array holding it.
    func line(of path: [String]) -> Int? {
        if let exact = entries.first(where: { $0.path == path }) { return exact.line }
        if let inside = entries.first(where: { $0.path.count > path.count && Array($0.path.prefix(path.count)) == path }) {
            return inside.line
        }
        return entries.filter { !$0.isHeader && $0.path.count < path.count && Array(path.prefix($0.path.count)) == $0.path }
            .max(by: { $0.path.count < $1.path.count })?.line
    }

    /// Reads a dotted key (`a`, `a.b`, `"a b".c`, `'x'`) from the start of `text`;
    /// returns its parts and the text after it with leading blanks skipped.
    static func keyPath(_ text: Substring) -> ([String], Substring)? {
        var rest = text
        var parts: [String] = []
        while true {
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            guard let first = rest.first else { return nil }
            if first == "\"" {
                var part = ""
                var i = rest.index(after: rest.startIndex)
                var closed = false
                while i < rest.endIndex {
                    let c = rest[i]
                    if c == "\"" {
                        closed = true
                        break
                    }
                    if c == "\\" {
                        i = rest.index(after: i)
                        guard i < rest.endIndex else { return nil }
                        switch rest[i] {
                        case "t": part.append("\t")
                        case "n": part.append("\n")
                        case "r": part.append("\r")
                        default: part.append(rest[i])
                        }
                    } else {
                        part.append(c)
                    }
                    i = rest.index(after: i)
                }
                guard closed else { return nil }
                parts.append(part)
                rest = rest[rest.index(after: i)...]
            } else if first == "'" {
                let body = rest.dropFirst()
                guard let close = body.firstIndex(of: "'") else { return nil }
                parts.append(String(body[..<close]))
                rest = body[body.index(after: close)...]
            } else {
                let bare = rest.prefix(while: { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
                guard !bare.isEmpty else { return nil }
                parts.append(String(bare))
                rest = rest[bare.endIndex...]
            }
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            guard rest.first == "." else { return (parts, rest) }
            rest = rest.dropFirst()
        }
    }
}

/// Finds the invalid TOML that makes toml++ abort the process instead of
/// reporting an error.
///
/// toml++ 3.4 (inside TOMLKit 0.6) checks its parser's preconditions with
/// assertions that are compiled in, and two of them can be reached from a file:
/// - a table header whose key starts with anything but a bare-key character or a
///   quote (`parse_key`, toml.hpp:15481): `[`, `[=x]`, `[.a]`, `[+1]`, `[é]` at the
///   start of a line, outside strings and array values;
/// - an array element that starts with `}` (`parse_value`, toml.hpp:14994): `[}`,
///   `[1, }`.
/// Either killed fived (`--check`, start-up and, worse, a SIGHUP reload of a
/// half-edited file). None of these is valid TOML, so reporting them first never
/// refuses a good file. Found by fuzz/config.swift.
enum TOMLAbortGuard {
    /// Where toml++ would abort: the 1-based line and column of the offending
    /// character, that character ("end of line" for none), and what was expected.
    struct Finding: Equatable {
        var line: Int
        var column: Int
        var found: String
        var expected: String
    }

    /// The first place in `text` where toml++ would abort; nil when there is none.
    static func firstAbort(in text: String) -> Finding? {
        let b = Array(text.utf8)
        let n = b.count
        // toml++ skips a UTF-8 byte order mark.
        var i = b.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var line = 1
        var lineStart = i
        var atLineStart = true
        // Brackets and braces of values still open (a line starting with `[` inside
        // one is not a header), whether this line is a header, and whether the next
        // character starts an array element.
        var open: [UInt8] = []
        var headerLine = false
        var elementStart = false
        func finding(at bad: Int, expected: String) -> Finding {
            let column = b[lineStart..<bad].count { $0 & 0xC0 != 0x80 } + 1
            var end = bad + 1
            while end < n && b[end] & 0xC0 == 0x80 { end += 1 }
            let found = b[bad] == 0x0A || b[bad] == 0x0D ? "end of line" : String(decoding: b[bad..<end], as: UTF8.self)
            return Finding(line: line, column: column, found: found, expected: expected)
        }
        enum State { case normal, multiBasic, multiLiteral }
        var state = State.normal
        func starts(_ s: String, at k: Int) -> Bool {
            let u = Array(s.utf8)
            return k + u.count <= n && Array(b[k..<k + u.count]) == u
        }
        while i < n {
            let c = b[i]
            if c == 0x0A {
                line += 1
                lineStart = i + 1
                atLineStart = true
                headerLine = false
                i += 1
                continue
            }
            switch state {
            case .multiBasic:
                if c == UInt8(ascii: "\\") && i + 1 < n && b[i + 1] != 0x0A { i += 2; continue }
                if starts("\"\"\"", at: i) { state = .normal; i += 3 } else { i += 1 }
                continue
            case .multiLiteral:
                if starts("'''", at: i) { state = .normal; i += 3 } else { i += 1 }
                continue
            case .normal:
                break
            }
            if c == 0x20 || c == 0x09 || c == 0x0D { i += 1; continue }
            if atLineStart {
                atLineStart = false
                if c == UInt8(ascii: "["), open.isEmpty {
                    headerLine = true
                    guard let bad = unsafeKeyStart(b, after: i) else { i += 1; continue }
                    return finding(at: bad, expected: "a table header must start with a key")
                }
            }
            if c == UInt8(ascii: "#") {
                while i < n && b[i] != 0x0A { i += 1 }
                continue
            }
            if elementStart && c == UInt8(ascii: "}") {
                return finding(at: i, expected: "expected a value or ']' in the array")
            }
            elementStart = false
            switch c {
            case UInt8(ascii: "["):
                if !headerLine {
                    open.append(c)
                    elementStart = true
                }
                i += 1
            case UInt8(ascii: "{"):
                open.append(c)
                i += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if !headerLine && !open.isEmpty { open.removeLast() }
                i += 1
            case UInt8(ascii: ","):
                elementStart = open.last == UInt8(ascii: "[")
                i += 1
            case UInt8(ascii: "\""):
                if starts("\"\"\"", at: i) { state = .multiBasic; i += 3; continue }
                i += 1
                while i < n && b[i] != UInt8(ascii: "\"") && b[i] != 0x0A {
                    i += b[i] == UInt8(ascii: "\\") && i + 1 < n && b[i + 1] != 0x0A ? 2 : 1
                }
                if i < n && b[i] == UInt8(ascii: "\"") { i += 1 }
            case UInt8(ascii: "'"):
                if starts("'''", at: i) { state = .multiLiteral; i += 3; continue }
                i += 1
                while i < n && b[i] != UInt8(ascii: "'") && b[i] != 0x0A { i += 1 }
                if i < n && b[i] == UInt8(ascii: "'") { i += 1 }
            default:
                i += 1
            }
        }
        return nil
    }

    /// For a `[` at `open` that starts a line: the index of the first key character
    /// when toml++ would assert on it (what `parse_table_header` checks before
    /// `parse_key`), else nil.
    private static func unsafeKeyStart(_ b: [UInt8], after open: Int) -> Int? {
        var j = open + 1
        func skipBlanks() -> Bool {
            let from = j
            while j < b.count && (b[j] == 0x20 || b[j] == 0x09) { j += 1 }
            return j > from
        }
        let blanks = skipBlanks()
        guard j < b.count else { return nil }  // end of file: toml++ reports it
        if b[j] == UInt8(ascii: "[") {
            if blanks { return nil }  // "[ [": toml++ reports it
            j += 1
            _ = skipBlanks()
            guard j < b.count else { return nil }
        }
        let k = b[j]
        let bare =
            (k >= 0x30 && k <= 0x39) || (k >= 0x41 && k <= 0x5A) || (k >= 0x61 && k <= 0x7A)
            || k == UInt8(ascii: "_") || k == UInt8(ascii: "-")
        if bare || k == UInt8(ascii: "\"") || k == UInt8(ascii: "'") || k == UInt8(ascii: "]") { return nil }
        return j
    }
}

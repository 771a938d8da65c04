/// sshd's `match_pattern`: `*` matches any run of bytes (also none), `?` any one
/// byte, everything else itself. Runs in O(text × pattern) time with no recursion,
/// so hostile patterns cannot blow the stack or the clock.
enum Wildcard {
    static func matches(_ text: [UInt8], pattern: [UInt8]) -> Bool {
        var t = 0
        var p = 0
        var starP = -1
        var starT = 0
        let star = UInt8(ascii: "*")
        let any = UInt8(ascii: "?")
        while t < text.count {
            if p < pattern.count && (pattern[p] == any || (pattern[p] == text[t] && pattern[p] != star)) {
                t += 1
                p += 1
            } else if p < pattern.count && pattern[p] == star {
                starP = p
                starT = t
                p += 1
            } else if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == star { p += 1 }
        return p == pattern.count
    }

    /// String convenience, comparing UTF-8 bytes.
    static func matches(_ text: some StringProtocol, pattern: some StringProtocol) -> Bool {
        matches(Array(text.utf8), pattern: Array(pattern.utf8))
    }
}

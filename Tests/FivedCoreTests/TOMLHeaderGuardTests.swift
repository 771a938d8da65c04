import Testing

@testable import FivedCore

/// Table headers toml++ would abort the process on (found by fuzz/config.swift)
/// are syntax errors naming the line, and nothing valid is refused.
@Suite("TOML table headers toml++ cannot take")
struct TOMLHeaderGuardTests {
    @Test("a header whose key starts badly is a one-line syntax error, not an abort", arguments: [
        ("[\n", 1, "end of line"),
        ("[ \r\nx = 1\n", 1, "end of line"),
        ("log_level = \"info\"\n[=x]\n", 2, "="),
        ("[.services]\n", 1, "."),
        ("\n\n[[ +1]]\n", 3, "+"),
        ("  [ #x]\n", 1, "#"),
        ("[\u{e9}tartups]\nx = 0\n", 1, "\u{e9}"),
        ("[\u{FFFD}tartups = 0\n", 1, "\u{FFFD}"),
    ])
    func refused(text: String, line: Int, found: String) throws {
        let finding = TOMLHeaderGuard.firstUnsafeHeader(in: text)
        #expect(finding?.line == line && finding?.found == found, "\(String(describing: finding))")
        do {
            _ = try ConfigurationLoader.parse(toml: text, file: "fived.toml")
            Issue.record("parsed")
        } catch {
            #expect(error.code == .configSyntax)
            #expect(error.description.hasPrefix("fived.toml:\(line): TOML syntax error: a table header must start with a key"), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test("headers, strings, comments and nested arrays that toml++ handles are left alone", arguments: [
        "[services.web]\nconnect = \"127.0.0.1:8080\"\n",
        "[[a]]\n[ b ]\n[\t\"quoted key\"]\n['literal']\n[_x]\n[-y]\n[9]\n",
        "# [=x]\nx = \"\"\"\n[=x]\n\"\"\"\ny = '''\n[.z]\n'''\n",
        "x = \"a \\\" [=b\"\ny = [\n  [+1],\n  [{ a = 1 }],\n]\n",
        "x = \"\"\"\\\n[=x]\"\"\"\n",
        "[",
        "[ [a]]\n",
        "[ ]\n",
    ])
    func allowed(text: String) {
        #expect(TOMLHeaderGuard.firstUnsafeHeader(in: text) == nil, "\(text.debugDescription)")
    }
}

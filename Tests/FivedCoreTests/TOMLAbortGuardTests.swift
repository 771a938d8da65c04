import Testing

@testable import FivedCore

/// Table headers and array elements toml++ would abort the process on (found by
/// fuzz/config.swift) are syntax errors naming the line; nothing valid is refused.
@Suite("TOML that toml++ would abort on")
struct TOMLAbortGuardTests {
    @Test(
        "a header whose key starts badly is a one-line syntax error, not an abort",
        arguments: [
            ("[\n", 1, "end of line"),
            ("[ \r\nx = 1\n", 1, "end of line"),
            ("log_level = \"info\"\n[=x]\n", 2, "="),
            ("[.services]\n", 1, "."),
            ("\n\n[[ +1]]\n", 3, "+"),
            ("  [ #x]\n", 1, "#"),
            ("[\u{e9}tartups]\nx = 0\n", 1, "\u{e9}"),
            ("[\u{FFFD}tartups = 0\n", 1, "\u{FFFD}"),
            ("listen = [}\n", 1, "}"),
            ("\u{FEFF}[[>>]]\n", 1, ">"),
            ("listen = [\r\n}\r\n", 2, "}"),
            ("allow = [\"a\",\n  # note\n  }\n", 3, "}"),
            ("x = { a = [ }] }\n", 1, "}"),
            ("listen = [[[}pper]\n", 1, "}"),
        ])
    func refused(text: String, line: Int, found: String) throws {
        let finding = TOMLAbortGuard.firstAbort(in: text)
        #expect(finding?.line == line && finding?.found == found, "\(String(describing: finding))")
        do {
            _ = try ConfigurationLoader.parse(toml: text, file: "fived.toml")
            Issue.record("parsed")
        } catch {
            #expect(error.code == .configSyntax)
            let expected = found == "}" ? "expected a value or ']' in the array" : "a table header must start with a key"
            #expect(error.description.hasPrefix("fived.toml:\(line): TOML syntax error: \(expected)"), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test(
        "headers, strings, comments and nested arrays that toml++ handles are left alone",
        arguments: [
            "[services.web]\nconnect = \"127.0.0.1:8080\"\n",
            "[[a]]\n[ b ]\n[\t\"quoted key\"]\n['literal']\n[_x]\n[-y]\n[9]\n",
            "# [=x]\nx = \"\"\"\n[=x]\n\"\"\"\ny = '''\n[.z]\n'''\n",
            "x = \"a \\\" [=b\"\ny = [\n  [+1],\n  [{ a = 1 }],\n]\n",
            "x = \"\"\"\\\n[=x]\"\"\"\n",
            "[",
            "[ [a]]\n",
            "[ ]\n",
            "x = [{ a = 1 }, { b = [1, 2] }]\ny = { c = [ ], d = {} }\nz = [\n  1, # }\n  2,\n]\n",
            "x = [\"}\", '}']\n",
        ])
    func allowed(text: String) {
        #expect(TOMLAbortGuard.firstAbort(in: text) == nil, "\(text.debugDescription)")
    }
}

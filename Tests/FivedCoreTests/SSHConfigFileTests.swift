import Testing

@testable import FivedCore

@Suite struct SSHConfigFileTests {
    static let sample = """
        # global
        User everyone
        Host box *.lab !secret.lab
            HostName 10.0.0.5
            Port=2222
            IdentityFile "~/keys/my key"
        Host secret.lab
          Port 9
        Match host foo exec "true"
          User matched
        Match all
          ConnectTimeout 7
        Include ~/.ssh/more
        """

    @Test func keywordsAreLowercasedAndValuesSplit() throws {
        let file = try SSHConfigFile(text: Self.sample, path: "cfg")
        let lines = file.lines(for: "box")
        #expect(lines.map(\.keyword) == ["user", "hostname", "port", "identityfile", "connecttimeout"])
        #expect(lines[2].value == "2222")
        #expect(lines[3].arguments == ["~/keys/my key"])
        #expect(lines[1].origin == "cfg:4")
    }

    @Test func hostPatternsWildcardAndNegation() throws {
        let file = try SSHConfigFile(text: Self.sample, path: "cfg")
        #expect(file.lines(for: "db.lab").contains { $0.keyword == "hostname" })
        #expect(!file.lines(for: "secret.lab").contains { $0.keyword == "hostname" })
        #expect(file.lines(for: "secret.lab").contains { $0.keyword == "port" && $0.value == "9" })
        #expect(!file.lines(for: "other").contains { $0.keyword == "hostname" })
        #expect(file.lines(for: "BOX").contains { $0.keyword == "hostname" })
    }

    @Test func unsupportedMatchAndIncludeAreSkippedWithANote() throws {
        let file = try SSHConfigFile(text: Self.sample, path: "cfg")
        #expect(!file.lines(for: "foo").contains { $0.value == "matched" })
        #expect(file.notes.count == 2)
        #expect(file.notes.contains { $0.contains("cfg:9") && $0.contains("Match") })
        #expect(file.notes.contains { $0.contains("Include") })
    }

    @Test func trailingCommentAndCRLF() throws {
        let file = try SSHConfigFile(text: "Port 22 # comment\r\nUser = bob\r\n", path: "c")
        #expect(file.lines(for: "x").map(\.arguments) == [["22"], ["bob"]])
    }

    @Test(arguments: ["Port", "Host", "IdentityFile \"unterminated", "User ="])
    func syntaxErrorsNameFileAndLine(_ text: String) {
        do {
            _ = try SSHConfigFile(text: "# first\n" + text, path: "/home/u/.ssh/config")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .clientConfigSyntax)
            #expect(error.message.hasPrefix("/home/u/.ssh/config:2:"))
        }
    }
}

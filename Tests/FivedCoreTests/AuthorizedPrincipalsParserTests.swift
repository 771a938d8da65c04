import Foundation
import Testing
@testable import FivedCore

@Suite struct AuthorizedPrincipalsParserTests {
    static let utc = TimeZone(identifier: "UTC")!

    @Test func linesAsSshdReadsThem() {
        let text = """
            # principals that may log in as alice
            alice
              ops   # trailing comment
            restrict,command="backup" backup-robot
            from="10.0.0.0/8",expiry-time="20300101Z" deploy
            no-such-option carol
            command="a b" x   dave
            weird#name

            """
        let (entries, problems) = AuthorizedPrincipalsParser.parseFile(Array(text.utf8), path: "/p", timeZone: Self.utc)
        #expect(entries.map(\.principal) == ["alice", "ops", "backup-robot", "deploy", "dave", "weird"])
        #expect(entries.map(\.line) == [2, 3, 4, 5, 7, 8])
        #expect(entries[2].options.restricted && entries[2].options.command == "backup")
        #expect(entries[3].options.from?.text == "10.0.0.0/8" && entries[3].options.expiryTime == 1_893_456_000)
        // only the first field is options, the text after the last blank the principal (as sshd)
        #expect(entries[4].options.command == "a b")
        #expect(entries[0].options == KeyOptions() && entries[5].options == KeyOptions())
        #expect(entries[4].location == "/p:7")
        #expect(problems.map(\.message) == ["/p:6: unknown option 'no-such-option': sshd does not know it, so the line is not honoured"])
        #expect(problems.allSatisfy { $0.code == .authorizedPrincipalsMalformed })
    }

    @Test func badLines() {
        let long = String(repeating: "a", count: AuthorizedPrincipalsParser.maximumLineLength + 1)
        let (entries, problems) = AuthorizedPrincipalsParser.parseFile(Array("a\0b\n\(long)\n".utf8) + [0xFF, 0x0A], path: "/p")
        #expect(entries.isEmpty)
        #expect(problems.map(\.message) == ["/p:1: line contains a NUL byte", "/p:2: line longer than 16384 bytes", "/p:3: the principal is not UTF-8"])
    }
}

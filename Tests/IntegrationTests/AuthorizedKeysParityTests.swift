#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

private let sshdPath = InetdSSHD.path

/// SPEC.md: "An authorized_keys line means in fived what it means in sshd." Here a
/// real sshd and fived read the same authorized_keys file, one line at a time, and
/// must give the same answer: is this key accepted from 127.0.0.1? (Issue 14 point 6;
/// the parser's own table is Tests/FivedCoreTests/AuthorizedKeysParserTests.swift.)
@Suite("authorized_keys: fived and sshd give the same answer", .timeLimit(.minutes(3)))
struct AuthorizedKeysParityTests {
    /// One authorized_keys line, built around the test key's `TYPE BASE64 COMMENT`
    /// line, and what sshd (OpenSSH 9.2) answers for it from 127.0.0.1: the row says
    /// so, so a change in sshd shows as well as a difference in fived.
    struct Row: Sendable, CustomStringConvertible {
        let name: String
        let sshdAccepts: Bool
        let line: @Sendable (_ key: String) -> String

        var description: String { name }

        init(_ name: String, _ sshdAccepts: Bool, _ line: @escaping @Sendable (String) -> String) {
            self.name = name
            self.sshdAccepts = sshdAccepts
            self.line = line
        }

        /// `OPTIONS KEY`.
        init(_ options: String, _ sshdAccepts: Bool) {
            self.init(options, sshdAccepts) { "\(options) \($0)" }
        }
    }

    static let rows: [Row] = [
        Row("the key alone", true) { $0 },
        // cloud-init's line for root on Ubuntu images.
        Row(#"command="echo 'Please login as the user \"ubuntu\" rather than the user \"root\".';echo;sleep 10""#, true),
        Row("a TAB before the key type (no options)", true) { "\t\($0)" },
        Row("a TAB between the options and the key type", true) { "no-pty\t\($0)" },
        Row("a trailing comma, then a TAB, before the key type", true) { "no-pty,\t\($0)" },
        Row("a trailing comma, then a space, before the key type", true) { "restrict, \($0)" },
        Row(#"permitopen="echo:1",permitopen="web:*",permitopen="*:*""#, true),
        Row(#"environment="A=\"x,y z\"""#, true),
        Row("an unterminated quote", false) { #"command="echo hi \#($0)"# },
        Row("a comment with quotes and commas", true) { #"\#($0) "my, key", x="y" z"# },
        // from=: the client is 127.0.0.1 (IPv4), and neither side looks names up (UseDNS no).
        Row(#"from="127.0.0.1, 10.0.0.1""#, true),  // the entry after ", " is " 10.0.0.1"
        Row(#"from="10.0.0.1, 127.0.0.1""#, false),  // " 127.0.0.1" matches nothing
        Row(#"from="localhost""#, false),  // host names are matched against the address text only
        Row(#"from="LOCALHOST,127.0.0.1""#, true),
        Row(#"from="127.0.0.1/8""#, false),  // host bits set below the mask: an invalid list
        Row(#"from="127.0.0.0/8""#, true),
        Row(#"from="127.0.0.0/33""#, false),  // a mask longer than the address
        Row(#"from="!10.0.0.1""#, false),  // negations only: nothing admits
        Row(#"from="!10.0.0.0/8,!192.168.0.0/16""#, false),
        Row(#"from="!127.0.0.1""#, false),
        Row(#"from="*,!127.0.0.1""#, false),
        Row(#"from="127.0.0.*""#, true),
        Row(#"from="127.?.0.1""#, true),
        Row(#"from="*""#, true),
        Row(#"from="0.0.0.0/0""#, true),
        Row(#"from="::1""#, false),
        Row(#"from="::/0""#, false),
        Row(#"from="::ffff:127.0.0.1""#, false),  // an IPv6 entry never matches an IPv4 client in sshd
        Row(#"from="::ffff:127.0.0.0/104""#, false),
        Row(#"from="127.0.0.1,""#, false),  // an empty entry
        Row(#"expiry-time="20000101""#, false),
        Row(#"expiry-time="20991231Z""#, true),
        Row("restrict", true),
        Row("RESTRICT", true),
        Row(",restrict", true),
        Row("restrict,,no-pty", true),
        Row("no-such-option", false),
        Row("cert-authority", false),  // a CA line never admits a plain key
        Row(#"principals="root""#, false),
        Row(#"command="a",command="b""#, false),
        Row(#"tunnel="x""#, false),
        Row(#"permitopen="echo""#, false),
        Row(#"environment="A-B=x""#, false),
    ]

    @Test(
        "each line: accepted from 127.0.0.1 by fived exactly when sshd accepts it",
        .enabled(if: sshdPath != nil && getuid() == 0, "needs /usr/sbin/sshd (apt-get install openssh-server) and root to run it"))
    func sameAnswers() async throws {
        let environment = try await TestEnvironment.make()
        let user = String(cString: getpwuid(getuid())!.pointee.pw_name)
        let sshd = try await InetdSSHD(directory: environment.directory, authorizedKeys: environment.authorizedKeysPath)
        try await environment.withFived(FivedOptions()) { fived in
            var differences: [String] = []
            var sshdSurprises: [String] = []
            for row in Self.rows {
                let line = row.line(environment.key.publicLine)
                // Both read the file on every authentication: one line, then both asked.
                try environment.setAuthorizedKeys([line])
                async let bySSHD = keyAccepted(port: sshd.port, key: environment.key, user: user, scratch: environment.directory)
                async let byFived = keyAccepted(port: fived.port, key: environment.key, user: user, scratch: environment.directory)
                let (sshdAnswer, fivedAnswer) = try await (bySSHD, byFived)
                let shown = line.replacingOccurrences(of: environment.key.publicLine, with: "KEY")
                    .replacingOccurrences(of: "\t", with: "<TAB>")
                guard let sshdAnswer, let fivedAnswer else {
                    differences.append("\(shown): no answer within 20 s (sshd \(String(describing: sshdAnswer)), fived \(String(describing: fivedAnswer)))")
                    continue
                }
                if sshdAnswer != row.sshdAccepts {
                    sshdSurprises.append("\(shown): sshd \(sshdAnswer ? "accepts" : "refuses") it, the table says otherwise")
                }
                if fivedAnswer != sshdAnswer {
                    differences.append("\(shown): sshd \(sshdAnswer ? "accepts" : "refuses"), fived \(fivedAnswer ? "accepts" : "refuses")")
                }
            }
            #expect(
                differences.isEmpty,
                "fived and sshd differ on \(differences.count) of \(Self.rows.count) lines:\n\(differences.joined(separator: "\n"))\n--- fived ---\n\(fived.logText.split(separator: "\n").filter { $0.contains("not honoured") || $0.contains("authentication failed") }.joined(separator: "\n"))"
            )
            #expect(
                sshdSurprises.isEmpty,
                "this sshd is not the one the table was written for:\n\(sshdSurprises.joined(separator: "\n"))\n--- sshd ---\n\(sshd.log)")
        }
        await sshd.stop()
    }
}

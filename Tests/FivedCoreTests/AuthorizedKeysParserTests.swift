import Foundation
import Testing
@testable import FivedCore

@Suite struct AuthorizedKeysParserTests {
    static let utc = TimeZone(identifier: "UTC")!
    static let rsa = TestKeys.rsa2048
    static let sk = TestKeys.skECDSA
    static let ed = TestKeys.ed25519

    func parse(_ line: String, timeZone: TimeZone = utc) -> Result<AuthorizedKey?, FivedCoreError> {
        AuthorizedKeysParser.parseLine(Substring(line), file: "/home/u/.ssh/authorized_keys", lineNumber: 3, timeZone: timeZone)
    }

    func key(_ line: String, timeZone: TimeZone = utc, sourceLocation: SourceLocation = #_sourceLocation) -> AuthorizedKey? {
        switch parse(line, timeZone: timeZone) {
        case .success(let k?): return k
        case .success(nil):
            Issue.record("skipped as blank: \(line)", sourceLocation: sourceLocation)
            return nil
        case .failure(let e):
            Issue.record("rejected \(line): \(e)", sourceLocation: sourceLocation)
            return nil
        }
    }

    func problem(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) -> FivedCoreError? {
        switch parse(line) {
        case .failure(let e):
            #expect(e.message.hasPrefix("/home/u/.ssh/authorized_keys:3: "), sourceLocation: sourceLocation)
            return e
        case .success(let k):
            Issue.record("accepted \(line.prefix(100)): \(String(describing: k))", sourceLocation: sourceLocation)
            return nil
        }
    }

    // MARK: sshd(8), AUTHORIZED_KEYS FILE FORMAT, "An example authorized_keys file"

    static var sshdExample: String {
        """
        # Comments are allowed at start of line. Blank lines are allowed.
        # Plain key, no restrictions
        \(rsa.line)
        # Forced command, disable PTY and all forwarding
        restrict,command="dump /home" \(rsa.line)
        # Restriction of ssh -L forwarding destinations
        permitopen="192.0.2.1:80",permitopen="192.0.2.2:25" \(rsa.line)
        # Restriction of ssh -R forwarding listeners
        permitlisten="localhost:8080",permitlisten="[::1]:22000" \(rsa.line)
        # Configuration for tunnel forwarding
        tunnel="0",command="sh /etc/netstart tun0" \(rsa.line)
        # Override of restriction to allow PTY allocation
        restrict,pty,command="nethack" \(rsa.line)
        # Allow FIDO key without requiring touch
        no-touch-required \(sk.line)
        # Require user-verification (e.g. PIN or biometric) for FIDO key
        verify-required \(sk.line)
        # Trust CA key, allow touch-less FIDO if requested in certificate
        cert-authority,no-touch-required,principals="user_a" \(rsa.line)

        """
    }

    @Test func sshdManualExample() throws {
        let (keys, problems) = AuthorizedKeysParser.parseFile(Self.sshdExample, path: "/etc/fived/authorized_keys", timeZone: Self.utc)
        #expect(keys.map(\.line) == [3, 5, 7, 9, 11, 13, 15, 17, 19])
        #expect(keys.allSatisfy { $0.file == "/etc/fived/authorized_keys" })
        try #require(keys.count == 9)

        let plain = keys[0]
        #expect(plain.blob.fingerprint == Self.rsa.fingerprint)
        #expect(plain.blob.keyType == "ssh-rsa")
        #expect(plain.comment == "rsab2048@fived-test")
        #expect(plain.options == KeyOptions())

        #expect(keys[1].options.restricted && !keys[1].options.portForwarding && !keys[1].options.pty)
        #expect(keys[1].options.command == "dump /home")

        #expect(
            keys[2].options.permitOpen == [
                .init(host: "192.0.2.1", port: .number(80)), .init(host: "192.0.2.2", port: .number(25)),
            ])
        #expect(keys[2].options.portForwarding)

        #expect(
            keys[3].options.permitListen == [
                .init(host: "localhost", port: .number(8080)), .init(host: "::1", port: .number(22000)),
            ])

        #expect(keys[4].options.tunnel == "0")
        #expect(keys[4].options.command == "sh /etc/netstart tun0")

        #expect(keys[5].options.restricted && keys[5].options.pty && !keys[5].options.portForwarding)
        #expect(keys[5].options.command == "nethack")

        #expect(keys[6].blob.keyType == "sk-ecdsa-sha2-nistp256@openssh.com")
        #expect(!keys[6].options.touchRequired)
        #expect(keys[7].options.verifyRequired && keys[7].options.touchRequired)

        // the CA line is honoured: its certificates are CertificateCheck's to decide
        #expect(keys[8].options.certAuthority && keys[8].options.principals == "user_a" && !keys[8].options.touchRequired)
        #expect(problems.isEmpty)
    }

    @Test(arguments: TestKeys.all.map(\.line))
    func everySupportedKeyType(line: String) {
        let k = key(line)
        let expected = TestKeys.all.first { $0.line == line }!
        #expect(k?.blob.fingerprint == expected.fingerprint)
        #expect(k?.comment == expected.comment)
    }

    // MARK: fields, blanks, comments

    @Test func blankAndCommentLines() {
        for line in ["", "   ", "\t", "# comment", "   # indented comment", "#ssh-ed25519 AAAA", "\r"] {
            guard case .success(nil) = parse(line) else {
                Issue.record("not skipped: \(line)")
                continue
            }
        }
    }

    @Test func commentIsTheRestOfTheLine() {
        #expect(key("\(Self.ed.type) \(Self.ed.base64)")?.comment == "")
        #expect(key("\(Self.ed.type) \(Self.ed.base64) alice@laptop")?.comment == "alice@laptop")
        #expect(key("\(Self.ed.type)\t\(Self.ed.base64)  my key  with spaces \t ")?.comment == "my key  with spaces")
        #expect(key("  \(Self.ed.type) \(Self.ed.base64) c\r")?.comment == "c")
        #expect(key("\(Self.ed.type) \(Self.ed.base64) \"quoted\" # not special")?.comment == "\"quoted\" # not special")
        #expect(key("\(Self.ed.type) \(Self.ed.base64) naïve ☃")?.comment == "naïve ☃")
    }

    @Test func fileWithCRLFAndLineNumbers() {
        let text = "# keys\r\n\r\n\(TestKeys.alice.line)\r\nbogus line\r\n\(TestKeys.bob.line)"
        let (keys, problems) = AuthorizedKeysParser.parseFile(text, path: "k", timeZone: Self.utc)
        #expect(keys.map(\.line) == [3, 5])
        #expect(keys.map(\.comment) == ["alice@laptop", "bob@desk"])
        #expect(problems.map(\.message.description).map { String($0.prefix(4)) } == ["k:4:"])
    }

    // MARK: options syntax

    @Test func quotingAsSshd() {
        let k = key(#"command="echo \"hi, there\" \\ok",from="10.0.0.0/8,192.168.0.0/16" \#(Self.ed.line)"#)
        #expect(k?.options.command == #"echo "hi, there" \\ok"#)
        #expect(k?.options.from?.text == "10.0.0.0/8,192.168.0.0/16")
        // spaces inside quotes do not end the options field
        #expect(key(#"command="a b  c" \#(Self.ed.line)"#)?.options.command == "a b  c")
        #expect(key(#"command="" \#(Self.ed.line)"#)?.options.command == "")
    }

    @Test func optionNamesIgnoreCase() {
        let k = key(#"RESTRICT,Port-Forwarding,PermitOpen="web:1",COMMAND="x",No-Pty \#(Self.ed.line)"#)
        #expect(k?.options.restricted == true)
        #expect(k?.options.portForwarding == true)
        #expect(k?.options.permitOpen == [.init(host: "web", port: .number(1))])
        #expect(k?.options.command == "x")
        #expect(k?.options.pty == false)
        #expect(key("no-X11-forwarding,X11-FORWARDING \(Self.ed.line)")?.options.x11Forwarding == true)
    }

    @Test func flagsApplyInOrder() {
        #expect(key("restrict,port-forwarding \(Self.ed.line)")?.options.portForwarding == true)
        #expect(key("port-forwarding,restrict \(Self.ed.line)")?.options.portForwarding == false)
        #expect(key("no-port-forwarding \(Self.ed.line)")?.options.portForwarding == false)
        #expect(key("no-port-forwarding,port-forwarding \(Self.ed.line)")?.options.portForwarding == true)
        #expect(key("port-forwarding,no-port-forwarding \(Self.ed.line)")?.options.portForwarding == false)
        let r = key("restrict \(Self.ed.line)")?.options
        #expect(r?.restricted == true && r?.agentForwarding == false && r?.x11Forwarding == false && r?.userRC == false)
    }

    @Test func emptyOptionsAreSkippedAsInSshd() {
        #expect(key(",restrict \(Self.ed.line)")?.options.restricted == true)
        #expect(key("restrict,,no-pty,,,port-forwarding \(Self.ed.line)")?.options.portForwarding == true)
    }

    @Test func optionsFivedIgnoresAreAccepted() {
        let line =
            #"agent-forwarding,no-agent-forwarding,x11-forwarding,no-x11-forwarding,pty,no-pty,user-rc,no-user-rc,"#
            + #"environment="LANG=C",environment="LANG=fr",environment="_X1=a=b",tunnel="any",tunnel="7","#
            + #"no-touch-required,touch-required,verify-required,no-verify-required \#(Self.ed.line)"#
        let o = key(line)?.options
        #expect(o?.environment == ["LANG=C", "_X1=a=b"])  // first per name wins
        #expect(o?.tunnel == "7")
        #expect(o?.touchRequired == true && o?.verifyRequired == false)
        #expect(o?.agentForwarding == false && o?.pty == false && o?.userRC == false && o?.x11Forwarding == false)
    }

    @Test func repeatedOptions() {
        let k = key(#"permitopen="a:1",permitopen="b:*",permitlisten="c:2",permitlisten="3" \#(Self.ed.line)"#)
        #expect(k?.options.permitOpen == [.init(host: "a", port: .number(1)), .init(host: "b", port: .any)])
        #expect(k?.options.permitListen == [.init(host: "c", port: .number(2)), .init(host: "", port: .number(3))])
        // sshd keeps the earliest expiry time
        #expect(key(#"expiry-time="20300101Z",expiry-time="20290101Z" \#(Self.ed.line)"#)?.options.expiryTime == 1_861_920_000)
        #expect(key(#"expiry-time="20290101Z",expiry-time="20300101Z" \#(Self.ed.line)"#)?.options.expiryTime == 1_861_920_000)
        // these may appear once only
        #expect(problem(#"command="a",command="b" \#(Self.ed.line)"#)?.message.contains("command") == true)
        #expect(problem(#"from="*",from="*" \#(Self.ed.line)"#)?.message.contains("from") == true)
        #expect(problem(#"cert-authority,principals="a",principals="b" \#(Self.ed.line)"#) != nil)
    }

    @Test func permitGrammar() {
        func permits(_ value: String, listen: Bool = false) -> [KeyOptions.Permit]? {
            let option = listen ? "permitlisten" : "permitopen"
            guard case .success(let k?) = parse(#"\#(option)="\#(value)" \#(Self.ed.line)"#) else { return nil }
            return listen ? k.options.permitListen : k.options.permitOpen
        }
        #expect(permits("web:1") == [.init(host: "web", port: .number(1))])
        #expect(permits("web:*") == [.init(host: "web", port: .any)])
        #expect(permits("Web.Example:65535") == [.init(host: "Web.Example", port: .number(65535))])
        #expect(permits("web/22") == [.init(host: "web", port: .number(22))])
        #expect(permits("[2001:db8::1]:443") == [.init(host: "2001:db8::1", port: .number(443))])
        #expect(permits("web:0080") == [.init(host: "web", port: .number(80))])
        #expect(permits("8080", listen: true) == [.init(host: "", port: .number(8080))])
        #expect(permits("*", listen: true) == [.init(host: "", port: .any)])
        #expect(permits("pub-*:*", listen: true) == [.init(host: "pub-*", port: .any)])
        for bad in ["web", "web:", "web:0", "web:65536", "web:http", "web:-1", "[::1", "[::1]x:1", "web:1:2", "8080", ":"] {
            #expect(permits(bad) == nil, "permitopen=\(bad)")
        }
        for bad in ["web:", "web:0", "[::1]", "web/1"] {
            #expect(permits(bad, listen: true) == nil, "permitlisten=\(bad)")
        }
    }

    // MARK: expiry-time

    @Test func expiryTimeFormats() {
        func expiry(_ value: String, _ zone: String = "UTC") -> Int64? {
            KeyOptions.parseExpiryTime(value, timeZone: TimeZone(identifier: zone)!)
        }
        #expect(expiry("20300101") == 1_893_456_000)
        #expect(expiry("20300101Z", "Europe/Berlin") == 1_893_456_000)
        #expect(expiry("20300101z", "Europe/Berlin") == 1_893_456_000)
        #expect(expiry("20300101UTC", "Europe/Berlin") == 1_893_456_000)
        let newYear: Int64 = 1_893_456_000
        let hour: Int64 = 3600
        #expect(expiry("20300101", "Europe/Berlin") == newYear - hour)
        #expect(expiry("20300101", "America/New_York") == newYear + 5 * hour)
        let julyFirst: Int64 = 1_909_094_400
        // Standard time all year, as sshd's mktime with tm_isdst = 0 computes it
        // (values from glibc's mktime under each TZ): not the summer-time offset.
        #expect(expiry("20300701", "America/New_York") == julyFirst + 5 * hour)
        #expect(expiry("20300701", "Europe/Berlin") == julyFirst - hour)
        #expect(expiry("20300101", "Australia/Lord_Howe") == newYear - 10 * hour - 1800)  // summer there, 30-minute DST
        #expect(expiry("20260814120000", "America/New_York") == 1_786_726_800)  // the issue's line; DST would give 1786723200
        let halfPastNoon: Int64 = newYear + 12 * hour + 1800
        #expect(expiry("203001011230") == halfPastNoon)
        #expect(expiry("20300101123045Z") == halfPastNoon + 45)
        #expect(expiry("20240229Z") == 1_709_164_800)
        for bad in [
            "", "Z", "2030010", "203001011", "2030-01-01", "20301301", "20300001", "20300100", "20300230",
            "20230229", "203001012400", "203001011260", "20300101120060", "19700101Z", "19690101Z", "2030010a",
            "20300101 ", " 20300101", "20300101ZZ", "20300101+0100", "２０３００１０１",
        ] {
            #expect(expiry(bad) == nil, "\(bad)")
        }
    }

    /// sshd reads an expiry time without `Z` with mktime(3) on a struct tm that it
    /// zeroed first (OpenSSH misc.c, parse_absolute_time): tm_isdst = 0, so the time is
    /// read as standard time even when summer time is in force. Under
    /// TZ=America/New_York, 2026-08-14 12:00 is then 12:00 EST = 17:00 UTC
    /// (1786726800), not 12:00 EDT = 16:00 UTC (1786723200). Issue 14 point 6.
    @Test func expiryTimeWithoutZoneIsStandardTimeAsSshdReadsIt() {
        let newYork = TimeZone(identifier: "America/New_York")!
        #expect(KeyOptions.parseExpiryTime("20260814120000", timeZone: newYork) == 1_786_726_800)
        #expect(key(#"expiry-time="20260814120000" \#(Self.ed.line)"#, timeZone: newYork)?.options.expiryTime == 1_786_726_800)
        // In winter standard time is in force anyway: both readings agree.
        #expect(KeyOptions.parseExpiryTime("20260114120000", timeZone: newYork) == 1_768_410_000)
    }

    @Test func expiryTimeOptionUsesInjectedZone() {
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        #expect(key(#"expiry-time="20300101" \#(Self.ed.line)"#, timeZone: berlin)?.options.expiryTime == 1_893_452_400)
        #expect(key(#"expiry-time="20300101Z" \#(Self.ed.line)"#, timeZone: berlin)?.options.expiryTime == 1_893_456_000)
        #expect(problem(#"expiry-time="2030" \#(Self.ed.line)"#)?.message.contains("expiry-time") == true)
        #expect(problem(#"expiry-time=20300101 \#(Self.ed.line)"#) != nil)
    }

    // MARK: lines sshd does not honour

    @Test func unknownOptionsAreReported() {
        for options in [
            "no-such-option", "restrictx", "no-restrict", "no-cert-authority", "pty=\"1\"", "foo=\"bar\"",
            "restrict,bogus", "port-forwardings", "permit-open=\"a:1\"", "command\"x\"", "restrict\"x\"",
            "command=\"a\"b",
        ] {
            let e = problem("\(options) \(Self.ed.line)")
            #expect(e?.code == .authorizedKeyUnknownOption, "\(options): \(String(describing: e))")
        }
        let e = problem("no-such-option \(Self.ed.line)")
        #expect(e?.message == "/home/u/.ssh/authorized_keys:3: unknown option 'no-such-option': sshd does not know it, so the line is not honoured")
    }

    /// sshd skips a comma and then stops at the blank after the options field
    /// (auth-options.c), so a trailing comma, or a field of only commas, is fine.
    @Test func trailingAndLoneCommasAreAcceptedAsSshdDoes() {
        #expect(key("restrict, \(Self.ed.line)")?.options.portForwarding == false)
        #expect(key("no-pty,\t\(Self.ed.line)")?.options.pty == false)
        #expect(key(", \(Self.ed.line)") != nil)
        #expect(key(",, \(Self.ed.line)") != nil)
    }

    @Test func malformedOptionsAreReported() {
        for options in [
            #"command="unterminated"#, #"command=abc"#, "command", "from",
            #"from="""#, #"from="10.0.0.1/8""#, #"environment="noequals""#, #"environment="=x""#,
            #"environment="A-B=x""#, #"tunnel="x""#, #"tunnel="-1""#, #"tunnel="99999999999""#,
            #"principals="user_a""#, #"command="a\""#,
        ] {
            let e = problem("\(options) \(Self.ed.line)")
            #expect(e?.code == .authorizedKeyMalformed, "\(options): \(String(describing: e))")
        }
    }

    @Test func certificatesAreNotHonouredAsKeysButCAsAre() {
        let cert = problem(TestKeys.bobCertificate.line)
        #expect(cert?.code == .authorizedKeyUnsupported)
        #expect(
            cert?.message
                == "/home/u/.ssh/authorized_keys:3: ssh-ed25519-cert-v01@openssh.com: a certificate is not honoured as a key; list its CA with cert-authority, or the plain key"
        )
        let ca = key("cert-authority \(TestKeys.ca.line)")
        #expect(ca?.options.certAuthority == true && ca?.blob == TestKeys.ca.blob && ca?.comment == "ca")
        let principals = key(#"cert-authority,principals="bob,carol",from="10.0.0.0/8" \#(TestKeys.ca.line)"#)
        #expect(principals?.options.principals == "bob,carol" && principals?.options.from?.text == "10.0.0.0/8")
        #expect(problem(#"principals="bob" \#(TestKeys.ca.line)"#)?.message.contains("principals= without cert-authority") == true)
        #expect(problem("cert-authority \(TestKeys.bobCertificate.line)")?.code == .authorizedKeyUnsupported)
        #expect(problem("ssh-dss AAAAB3NzaC1kc3MAAACBAP== dsa")?.code == .authorizedKeyUnsupported)
    }

    @Test func malformedKeysAreReported() {
        let ed = Self.ed
        let cases: [(String, String)] = [
            ("ssh-foo \(ed.base64) c", "not a key type"),
            ("hello", "not a key type"),
            ("ssh-ed25519", "no key"),
            ("restrict ssh-ed25519", "no key"),
            ("ssh-ed25519 !!!! c", "base64"),
            ("ssh-ed25519 \(ed.base64.dropLast()) c", "base64"),
            ("ssh-rsa \(ed.base64) c", "not ssh-rsa"),
            ("ssh-ed25519 \(TestKeys.skEd25519.base64) c", "not ssh-ed25519"),
            ("ecdsa-sha2-nistp384 \(TestKeys.ecdsa256.base64) c", "not ecdsa-sha2-nistp384"),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 c", "malformed"),
            ("ssh-ed25519 AAAAB3NzaC1kc3MAAAAA c", "not ssh-ed25519"),  // blob type ssh-dss
            ("restrict ssh-foo \(ed.base64)", "not a key type"),
            ("Ssh-ed25519 \(ed.base64)", "not a key type"),
            ("restrict \(ed.base64) c", "not a key type"),
            ("\(ed.base64) c", "not a key type"),
            ("ssh-ed25519\u{0} \(ed.base64)", "NUL"),
        ]
        for (line, reason) in cases {
            let e = problem(line)
            #expect(e?.code == .authorizedKeyMalformed, "\(line)")
            #expect(e?.message.contains(reason) == true, "\(line): \(String(describing: e)) lacks '\(reason)'")
        }
    }

    @Test func longLinesAreRejectedCleanly() {
        let huge = String(repeating: "A", count: 64 * 1024)
        #expect(problem("ssh-ed25519 \(huge) c")?.message.contains("longer than 16384") == true)
        #expect(problem("\(Self.ed.line) \(huge)")?.code == .authorizedKeyMalformed)
        let quoted = "command=\"" + String(repeating: "x", count: 70000) + "\" " + Self.ed.line
        #expect(problem(quoted) != nil)
        // just under the bound is fine
        let padding = String(repeating: "c", count: AuthorizedKeysParser.maximumLineLength - Self.ed.line.utf8.count - 1)
        #expect(key("\(Self.ed.line) \(padding)")?.comment.hasSuffix("ccc") == true)
        let (keys, problems) = AuthorizedKeysParser.parseFile(
            "\(huge)\n\(TestKeys.alice.line)\n", path: "f", timeZone: Self.utc)
        #expect(keys.count == 1 && problems.count == 1)
    }

    @Test func noiseNeverCrashes() {
        var noise = TestKeys.Noise(state: 0x1234_5678_9ABC_DEF1)
        let alphabet = Array(#"ab=",\ "#.utf8) + Array("ssh-ed25519 ".utf8) + Array(Self.ed.base64.utf8.prefix(20)) + [0x09, 0x0D, 0xC3, 0xA9]
        for _ in 0..<3000 {
            let length = Int(noise.next() % 120)
            let bytes = (0..<length).map { _ in alphabet[Int(noise.next() % UInt64(alphabet.count))] }
            _ = parse(String(decoding: bytes, as: UTF8.self))
            // a real line with one byte replaced
            var line = Array("restrict,permitopen=\"web:1\" \(Self.ed.line)".utf8)
            line[Int(noise.next() % UInt64(line.count))] = alphabet[Int(noise.next() % UInt64(alphabet.count))]
            _ = parse(String(decoding: line, as: UTF8.self))
        }
    }

    // MARK: AuthorizedKeysFile tokens

    @Test func expandPath() {
        #expect(AuthorizedKeysParser.expandPath("%h/.ssh/authorized_keys", user: "alice", home: "/home/alice") == "/home/alice/.ssh/authorized_keys")
        #expect(AuthorizedKeysParser.expandPath("/etc/fived/keys/%u", user: "alice", home: nil) == "/etc/fived/keys/alice")
        #expect(AuthorizedKeysParser.expandPath("/k/100%%-%u", user: "bob", home: nil) == "/k/100%-bob")
        #expect(AuthorizedKeysParser.expandPath("/etc/fived/authorized_keys", user: "x", home: nil) == "/etc/fived/authorized_keys")
        #expect(AuthorizedKeysParser.expandPath("%h/.ssh/authorized_keys", user: "alice", home: nil) == nil)
        #expect(AuthorizedKeysParser.expandPath("%h/k", user: "alice", home: "") == nil)
        #expect(AuthorizedKeysParser.expandPath("/k/%U", user: "alice", home: nil) == nil)
        #expect(AuthorizedKeysParser.expandPath("/k/%", user: "alice", home: nil) == nil)
        for user in ["", ".", "..", "../etc", "a/b", "a\u{0}b"] {
            #expect(AuthorizedKeysParser.expandPath("/etc/fived/keys/%u", user: user, home: nil) == nil, "user \(user)")
        }
        #expect(AuthorizedKeysParser.expandPath("/k/%%u", user: "../x", home: nil) == "/k/%u")
    }
}

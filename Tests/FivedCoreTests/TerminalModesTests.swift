import Testing

@testable import FivedCore

@Suite struct TerminalModesTests {
    static func pair(_ opcode: UInt8, _ value: UInt32) -> [UInt8] {
        [opcode, UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    @Test func parsesWhatOpenSSHSends() throws {
        // VINTR ^C, VEOF ^D, VSUSP disabled (255), ECHO off, ICANON on, IUTF8 on, ISPEED, OSPEED, an opcode
        // sshd knows and fived has no use for (VDSUSP), an unknown one (20), then TTY_OP_END.
        let bytes =
            Self.pair(1, 3) + Self.pair(5, 4) + Self.pair(10, 255) + Self.pair(53, 0) + Self.pair(51, 1)
            + Self.pair(42, 1) + Self.pair(128, 38400) + Self.pair(129, 38400) + Self.pair(11, 25) + Self.pair(20, 7) + [0]
        let modes = try TerminalModes(encoded: bytes)
        #expect(
            modes.settings == [
                .character(.interrupt, 3), .character(.endOfFile, 4), .character(.suspend, nil), .flag(.echo, false),
                .flag(.canonical, true), .flag(.utf8Input, true), .inputSpeed(38400), .outputSpeed(38400),
                .character(.delayedSuspend, 25),
            ])
    }

    @Test func stopsAtTheEndOrAnUndefinedOpcode() throws {
        #expect(try TerminalModes(encoded: [UInt8]()).settings.isEmpty)
        #expect(try TerminalModes(encoded: [0] + Self.pair(53, 0)).settings.isEmpty)
        // 160..255 stop parsing (RFC 4254 §8); what follows is not read, even if malformed.
        #expect(try TerminalModes(encoded: Self.pair(53, 1) + [160, 1, 2]).settings == [.flag(.echo, true)])
        #expect(try TerminalModes(encoded: Self.pair(53, 1) + [255]).settings == [.flag(.echo, true)])
        // No TTY_OP_END at all (paramiko sends an empty string; some send none): fine.
        #expect(try TerminalModes(encoded: Self.pair(72, 1)).settings == [.flag(.newlineToReturnNewline, true)])
    }

    @Test(arguments: [[53], [53, 0, 0, 0], [1, 0, 0, 0, 3, 5, 0]] as [[UInt8]])
    func truncatedPairsAreMalformed(_ bytes: [UInt8]) {
        #expect(throws: FivedCoreError.self) { try TerminalModes(encoded: bytes) }
    }

    @Test func boundsThePairCount() throws {
        let many = (0..<TerminalModes.maximumPairs).flatMap { _ in Self.pair(53, 1) }
        #expect(try TerminalModes(encoded: many).settings.count == TerminalModes.maximumPairs)
        #expect(throws: FivedCoreError.self) { try TerminalModes(encoded: many + Self.pair(53, 0)) }
    }

    @Test func keepsOnlyATermSafeForAnEnvironment() {
        func term(_ t: String) -> String {
            TerminalRequest(term: t, columns: 80, rows: 24, widthPixels: 0, heightPixels: 0, modes: TerminalModes()).term
        }
        #expect(term("xterm-256color") == "xterm-256color")
        #expect(term("screen.xterm+x") == "screen.xterm+x")
        #expect(term("") == "")
        #expect(term("xterm\nLD_PRELOAD=/tmp/x") == "")
        #expect(term("a=b") == "")
        #expect(term(String(repeating: "x", count: 65)) == "")
    }

    @Test func clampsTheSize() {
        let request = TerminalRequest(term: "vt100", columns: 70_000, rows: 50, widthPixels: .max, heightPixels: 0, modes: TerminalModes())
        #expect(request.clampedSize.columns == 65535 && request.clampedSize.rows == 50 && request.clampedSize.widthPixels == 65535)
    }
}

@Suite struct AuthorizedKeysCommandTests {
    @Test func expandsTokensPerArgument() {
        let argv = AuthorizedKeysCommand.argv(
            "/usr/local/bin/keys --user %u --home=%h %t %f %k 100%% %x", user: "alice", home: "/home/alice",
            keyType: "ssh-ed25519", fingerprint: "SHA256:abc", keyBase64: "AAAA")
        #expect(argv == ["/usr/local/bin/keys", "--user", "alice", "--home=/home/alice", "ssh-ed25519", "SHA256:abc", "AAAA", "100%", "%x"])
    }

    @Test func aUserNameCannotAddArguments() {
        // The user name comes from the client: spaces in it stay inside one argument.
        let argv = AuthorizedKeysCommand.argv("/bin/keys %u", user: "a b --evil", home: "/", keyType: "t", fingerprint: "f", keyBase64: "k")
        #expect(argv == ["/bin/keys", "a b --evil"])
    }
}

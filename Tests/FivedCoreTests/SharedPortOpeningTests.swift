import Testing

@testable import FivedCore

/// `tcpmux_on_ssh_port`: which protocol a connection's first bytes (or its silence) say it speaks.
@Suite struct SharedPortOpeningTests {
    private func judge(_ text: String, silenceOver: Bool = false) -> SharedPortOpening {
        SharedPortOpening(firstBytes: Array(text.utf8), silenceOver: silenceOver)
    }

    @Test("SSH clients' identification strings are SSH, whole or as their first four bytes")
    func ssh() {
        for text in [
            "SSH-", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n", "SSH-2.0-PuTTY_Release_0.78\r\n",
            "SSH-2.0-paramiko_2.12.0\r\n", "SSH-2.0-dropbear_2022.83\r\n", "SSH-1.99-old\r\n", "SSH-2.0-x",
        ] {
            #expect(judge(text) == .ssh, "\(text.debugDescription)")
            #expect(judge(text, silenceOver: true) == .ssh, "\(text.debugDescription)")
        }
    }

    @Test("TCPMUX name lines, HELP and anything else that is not SSH- are TCPMUX")
    func tcpmux() {
        for text in [
            "echo\r\n", "HELP\r\n", "help\n", "e", "\r\n", " upper\r\n", "GET / HTTP/1.1\r\n",
            // Names may hold '-' and compare without case; only the exact uppercase SSH- is SSH.
            "ssh-keys\r\n", "Ssh-keys\r\n", "SSh-\r\n", "SSH\r\n", "SSHD\r\n", "SS\n", "S-", "SSH_",
        ] {
            #expect(judge(text) == .tcpmux, "\(text.debugDescription)")
            #expect(judge(text, silenceOver: true) == .tcpmux, "\(text.debugDescription)")
        }
        #expect(SharedPortOpening(firstBytes: [0x00, 0x16, 0x03], silenceOver: false) == .tcpmux)
    }

    @Test("nothing, or a beginning of SSH-, waits; after the silence limit it is SSH")
    func undecided() {
        for text in ["", "S", "SS", "SSH"] {
            #expect(judge(text) == .undecided, "\(text.debugDescription)")
            #expect(judge(text, silenceOver: true) == .ssh, "\(text.debugDescription)")
        }
    }

    @Test("only the first four bytes count, so a peek of four is enough")
    func fourBytes() {
        #expect(SharedPortOpening.bytesNeeded == 4)
        #expect(SharedPortOpening(firstBytes: Array("SSH-2.0-".utf8).prefix(4), silenceOver: false) == .ssh)
        #expect(SharedPortOpening.silenceMilliseconds == 1000)
    }
}

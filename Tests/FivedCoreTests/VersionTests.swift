import Foundation
import Testing

@testable import FivedCore

struct VersionTests {
    /// The VERSION file (read by scripts/package.sh) and the binaries' version agree.
    @Test func versionFileMatchesTheBinaries() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = try String(contentsOf: root.appendingPathComponent("VERSION"), encoding: .utf8)
        #expect(file.trimmingCharacters(in: .whitespacesAndNewlines) == FivedVersion.current)
    }

    /// RFC 4253 §4.2: the software version has no spaces or minus signs, and the
    /// whole identification line (with "SSH-2.0-" and CR LF) fits in 255 bytes.
    /// It must match OpenSSH's "OpenSSH*" compat pattern and none of the older ones.
    @Test func identificationEarnsOpenSSHsModernCompatFlags() {
        let software = FivedVersion.sshSoftwareVersion
        #expect(!software.contains(" ") && !software.contains("-"))
        #expect(("SSH-2.0-" + FivedVersion.sshIdentification + "\r\n").utf8.count <= 255)
        #expect(FivedVersion.sshIdentification.hasPrefix("OpenSSH"))
        // compat.c's patterns before the catch-all, and PuTTY's OpenSSH bug patterns, all need a digit after "OpenSSH_".
        let afterPrefix = software.dropFirst("OpenSSH_".count).first
        #expect(afterPrefix.map { !$0.isNumber } ?? false)
    }
}

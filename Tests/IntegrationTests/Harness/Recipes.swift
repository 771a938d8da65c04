#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The files under examples/ that the recipe and systemd tests run as written.
enum Examples {
    /// The repository's examples/ folder (three levels above this file's folder).
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples").path

    /// The text of `examples/NAME`, with each `(placeholder, value)` replaced; fails
    /// when a placeholder is missing, so a recipe edited out from under its test is noticed.
    static func text(_ name: String, replacing replacements: [(String, String)] = []) throws -> String {
        var text = try String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)
        for (placeholder, value) in replacements {
            guard text.contains(placeholder) else { throw HarnessError("examples/\(name) no longer contains \(placeholder)") }
            text = text.replacingOccurrences(of: placeholder, with: value)
        }
        return text
    }

    /// The absolute path of `examples/NAME`.
    static func path(_ name: String) -> String { "\(directory)/\(name)" }
}

extension Fived {
    /// Starts `ssh -N -L PORT:SERVICE:1` and waits until the local port accepts.
    func localForward(_ service: String, name: String) async throws -> (ssh: ChildProcess, port: UInt16) {
        let port = try Sockets.unusedPort()
        let ssh = try spawnSSH(["-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:\(port):\(service):1"], name: name)
        let listening = await eventually {
            guard ssh.isRunning else { return true }
            return isListening(port: port)
        }
        guard listening, ssh.isRunning else {
            await ssh.killGroup()
            throw HarnessError("ssh -L \(port):\(service):1 did not start listening: \(ssh.stderr)")
        }
        return (ssh, port)
    }
}

/// Whether something listens on 127.0.0.1:`port`, found by trying to bind it
/// (connecting would open a channel through the forward and show up in the logs).
func isListening(port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return rc != 0 && errno == EADDRINUSE
}

/// The first of `candidates` that is an executable file, for programs the tests
/// prefer from the system rather than from a version manager's shims on PATH.
func program(_ candidates: String...) -> String? {
    candidates.first { access($0, X_OK) == 0 }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A client key pair made with the stock `ssh-keygen`, as users make theirs.
struct ClientKey: Sendable {
    enum KeyType: String, Sendable {
        case ed25519, rsa, ecdsa
    }

    let type: KeyType
    /// The private key file (pass to `ssh -i`).
    let privatePath: String
    /// The `.pub` line: `ssh-ed25519 AAAA... comment`.
    let publicLine: String
    /// The comment given to ssh-keygen.
    let comment: String
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    let fingerprint: String

    /// The authorized_keys line for this key, with optional leading options.
    func authorizedLine(options: String? = nil) -> String {
        if let options { return "\(options) \(publicLine)" }
        return publicLine
    }

    /// This private key in another client's format, `PATH.EXTENSION`, made once per
    /// test directory by `program` with `arguments(PATH, PATH.EXTENSION)`.
    func converted(
        to pathExtension: String, by program: String, in directory: TestDirectory, _ arguments: (String, String) -> [String]
    ) async throws -> String {
        let converted = "\(privatePath).\(pathExtension)"
        if access(converted, R_OK) == 0 { return converted }
        let made = try await runProcess(
            program, arguments(privatePath, converted), environment: Tools.environment(home: directory.path), scratch: directory.path)
        guard made.exitStatus == 0 else {
            throw HarnessError("\((program as NSString).lastPathComponent) could not convert \(privatePath): \(made)")
        }
        return converted
    }

    /// Generates a new key pair in `directory` named `name`.
    static func generate(
        _ type: KeyType = .ed25519, name: String, comment: String? = nil, in directory: TestDirectory
    ) async throws -> ClientKey {
        let path = directory.file(name)
        let comment = comment ?? "\(name)@fived-test"
        var arguments = ["-q", "-t", type.rawValue, "-N", "", "-C", comment, "-f", path]
        if type == .rsa { arguments += ["-b", "2048"] }  // fast to make; still rsa-sha2-256/512
        let made = try await runProcess(
            try Tools.path("ssh-keygen"), arguments, environment: Tools.environment(home: directory.path),
            scratch: directory.path)
        guard made.exitStatus == 0 else { throw HarnessError("ssh-keygen failed: \(made)") }
        let publicLine = try String(contentsOfFile: path + ".pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let fingerprint = try await Tools.fingerprint(ofKeyFile: path + ".pub", scratch: directory)
        return ClientKey(
            type: type, privatePath: path, publicLine: publicLine, comment: comment, fingerprint: fingerprint)
    }
}

/// The OpenSSH client tools the tests drive.
enum Tools {
    /// The absolute path of `program`, or an error saying how to install it.
    static func path(_ program: String) throws -> String {
        guard let found = which(program) else {
            throw HarnessError("\(program) not found: install openssh-client (scripts/test.sh does)")
        }
        return found
    }

    /// A minimal environment for a child: PATH, an isolated HOME, and `extra`.
    /// Nothing of the test runner's own (no SSH_AUTH_SOCK, no real HOME).
    static func environment(home: String, extra: [String: String] = [:]) -> [String: String] {
        var environment = [
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": home,
            "LANG": "C",
        ]
        // Sanitizer settings reach a sanitized fived (docs/security.md, "Sanitizers").
        let inherited = ProcessInfo.processInfo.environment
        for name in ["ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"] {
            if let value = inherited[name] { environment[name] = value }
        }
        environment.merge(extra) { $1 }
        return environment
    }

    /// `SHA256:...` of a public or private key file, from `ssh-keygen -lf`.
    static func fingerprint(ofKeyFile file: String, scratch: TestDirectory) async throws -> String {
        let listed = try await runProcess(
            try path("ssh-keygen"), ["-l", "-E", "sha256", "-f", file],
            environment: environment(home: scratch.path), scratch: scratch.path)
        guard listed.exitStatus == 0,
            let field = listed.stdoutText.split(separator: " ").first(where: { $0.hasPrefix("SHA256:") })
        else { throw HarnessError("ssh-keygen -lf \(file) failed: \(listed)") }
        return String(field)
    }

    /// The hex SHA-256 of `bytes`, computed by the stock `sha256sum`.
    static func sha256(_ bytes: [UInt8], scratch: TestDirectory) async throws -> String {
        let name = "sha-input-\(UInt32.random(in: 0...UInt32.max))"
        let file = try scratch.write(name, bytes)
        let summed = try await runProcess(
            try path("sha256sum"), [file], environment: environment(home: scratch.path), scratch: scratch.path)
        guard summed.exitStatus == 0, let hex = summed.stdoutText.split(separator: " ").first else {
            throw HarnessError("sha256sum failed: \(summed)")
        }
        return String(hex)
    }
}

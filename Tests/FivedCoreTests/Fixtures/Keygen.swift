import Foundation
@testable import FivedCore

/// A private temporary directory in which tests run the real `ssh-keygen` to
/// make CA keys, user keys, certificates and KRLs, so that nothing generated is
/// committed. Removed when the value goes away.
final class Keygen {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let directory: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "fived-certs-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw Failure(description: "mkdtemp failed")
        }
        directory = String(cString: made)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// Runs ssh-keygen with `arguments` in the directory; its stdout, or a
    /// failure carrying its stderr.
    @discardableResult
    func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["TZ"] = "UTC"
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description: "ssh-keygen \(arguments.joined(separator: " ")): exit \(process.terminationStatus): \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Generates a key pair `name`, `name.pub` (`type`: ed25519, ecdsa, rsa) and
    /// returns the public key.
    @discardableResult
    func key(_ name: String, type: String = "ed25519", bits: Int? = nil) throws -> PublicKeyBlob {
        var arguments = ["-q", "-t", type, "-N", "", "-C", name, "-f", name]
        if let bits { arguments += ["-b", String(bits)] }
        try run(arguments)
        return try publicKey("\(name).pub")
    }

    /// The key of a `.pub` file.
    func publicKey(_ file: String) throws -> PublicKeyBlob {
        let fields = try String(contentsOfFile: path(file), encoding: .utf8).split(separator: " ")
        guard fields.count >= 2, let blob = PublicKeyBlob(base64: fields[1]) else { throw Failure(description: "\(file): no key") }
        return blob
    }

    /// The text of a file in the directory.
    func text(_ file: String) throws -> String { try String(contentsOfFile: path(file), encoding: .utf8) }

    /// The bytes of a file in the directory.
    func bytes(_ file: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path(file)))) }

    /// Writes `text` to `file` in the directory.
    func write(_ file: String, _ text: String) throws {
        try text.write(toFile: path(file), atomically: true, encoding: .utf8)
    }

    /// Signs `key.pub` with the CA `ca` (`ssh-keygen -s`), as the options ask,
    /// and returns the certificate's raw blob from `key-cert.pub`.
    func certify(
        _ key: String, ca: String, id: String = "alice-laptop", principals: String? = "alice",
        validity: String? = "always:forever", serial: UInt64? = nil, host: Bool = false,
        options: [String] = [], algorithm: String? = nil
    ) throws -> [UInt8] {
        var arguments = ["-q", "-s", ca, "-I", id]
        if let principals { arguments += ["-n", principals] }
        if let validity { arguments += ["-V", validity] }
        if let serial { arguments += ["-z", String(serial)] }
        if host { arguments.append("-h") }
        for option in options { arguments += ["-O", option] }
        if let algorithm { arguments += ["-t", algorithm] }
        try run(arguments + ["\(key).pub"])
        let fields = try text("\(key)-cert.pub").split(separator: " ")
        guard fields.count >= 2, let raw = Base64.decode(fields[1]) else { throw Failure(description: "\(key)-cert.pub: no certificate") }
        return raw
    }

    /// `certify`, parsed.
    func certificate(
        _ key: String, ca: String, id: String = "alice-laptop", principals: String? = "alice",
        validity: String? = "always:forever", serial: UInt64? = nil, host: Bool = false,
        options: [String] = [], algorithm: String? = nil
    ) throws -> OpenSSHCertificate {
        try OpenSSHCertificate(
            bytes: certify(
                key, ca: ca, id: id, principals: principals, validity: validity, serial: serial, host: host,
                options: options, algorithm: algorithm))
    }

    /// Builds a KRL `name` from `spec` lines (`serial: 42`, `id: alice`,
    /// `key: ssh-ed25519 ...`, `sha256: ...`, `hash: SHA256:...`) with `ssh-keygen
    /// -k`, `ca` (a `.pub` file, or `none` for any CA) given as `-s`; its bytes.
    func krl(_ name: String, ca: String?, spec: String) throws -> [UInt8] {
        try write("\(name).spec", spec)
        var arguments = ["-q", "-k", "-f", name]
        if let ca { arguments += ["-s", ca] }
        try run(arguments + ["\(name).spec"])
        return try bytes(name)
    }
}

import FivedCore
import Foundation
import LibSSH
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Loads host keys, generating an Ed25519 key where a configured file is missing.
enum HostKeys {
    /// A host key that was refused, with a message naming the file.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Validates one host key file without changing anything: nil when it is
    /// usable, a note when it is missing (it will be generated), or a Failure.
    static func check(path: String) throws(Failure) -> String? {
        var st = stat()
        if lstat(path, &st) != 0 {
            guard errno == ENOENT else { throw Failure(description: "\(path): \(String(cString: strerror(errno)))") }
            return "host key \(path) does not exist: an Ed25519 key will be generated there on start"
        }
        _ = try validated(path: path, st)
        return nil
    }

    private static func validated(path: String, _ st: stat) throws(Failure) -> SSHKey {
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw Failure(description: "\(path): host key is not a regular file")
        }
        if st.st_mode & 0o077 != 0 {
            throw Failure(
                description: "\(path): private host key is readable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); run chmod 600 \(path)")
        }
        do {
            return try SSHKey.importPrivateKey(path: path)
        } catch {
            throw Failure(description: "\(path): not a readable, unencrypted SSH private key")
        }
    }

    static func load(paths: [String], logger: Logger) throws(Failure) -> [SSHKey] {
        var keys: [SSHKey] = []
        for path in paths {
            var st = stat()
            if lstat(path, &st) != 0 {
                guard errno == ENOENT else {
                    throw Failure(description: "\(path): \(String(cString: strerror(errno)))")
                }
                let key = try generate(at: path)
                let fingerprint = (try? key.publicBlob()).flatMap { PublicKeyBlob(bytes: $0)?.fingerprint } ?? "?"
                logger.notice("generated host key", metadata: ["file": "\(path)", "fingerprint": "\(fingerprint)"])
                keys.append(key)
                continue
            }
            let key = try validated(path: path, st)
            let fingerprint = (try? key.publicBlob()).flatMap { PublicKeyBlob(bytes: $0)?.fingerprint } ?? "?"
            logger.info("host key loaded", metadata: ["file": "\(path)", "type": "\(key.typeName)", "fingerprint": "\(fingerprint)"])
            keys.append(key)
        }
        return keys
    }

    /// Writes a fresh Ed25519 key with mode 0600 (created exclusively, never
    /// world-readable even for an instant), and its .pub beside it.
    private static func generate(at path: String) throws(Failure) -> SSHKey {
        let key: SSHKey
        let text: String
        do {
            key = try SSHKey.generateEd25519()
            text = try key.exportPrivateOpenSSH()
        } catch {
            throw Failure(description: "\(path): \(error)")
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Failure(description: "\(path): cannot create host key: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                unlink(path)
                throw Failure(description: "\(path): cannot write host key: \(String(cString: strerror(e)))")
            }
            offset += n
        }
        fsync(fd)
        if let line = try? key.publicLine() {
            try? (line + " fived-host-key\n").write(toFile: path + ".pub", atomically: true, encoding: .utf8)
        }
        return key
    }
}

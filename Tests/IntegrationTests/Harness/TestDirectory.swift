#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A private temporary directory for one test (HOME for every child, keys, configs,
/// sockets, outputs). Short, so Unix socket paths stay under 108 bytes. Removed when the
/// test ends unless FIVED_IT_KEEP is set.
final class TestDirectory: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/fived-it-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw HarnessError("mkdtemp: \(errnoText())") }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // fived started as root serves as its daemon_user: it must reach the
        // config, the CA and revocation files and the Unix sockets a test makes
        // here, as it would in /etc/fived and /run (the sockets are made mode 0666).
        chmod(path, Self.asRoot ? 0o755 : 0o700)
    }

    /// The tests run as root (CI): fived drops to its daemon_user after starting.
    static let asRoot = geteuid() == 0

    deinit {
        if ProcessInfo.processInfo.environment["FIVED_IT_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// `name` inside this directory.
    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `text` to `name` (atomically, so a reader never sees half a file).
    @discardableResult
    func write(_ name: String, _ text: String, mode: mode_t = 0o644) throws -> String {
        try write(name, Array(text.utf8), mode: mode)
    }

    /// Writes `bytes` to `name` (atomically: written beside it, then renamed).
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws -> String {
        let target = file(name)
        let temporary = target + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        try Data(bytes).write(to: URL(fileURLWithPath: temporary))
        chmod(temporary, mode)
        guard rename(temporary, target) == 0 else { throw HarnessError("rename \(target): \(errnoText())") }
        return target
    }

    /// The bytes of `name` (or of an absolute path).
    func read(_ name: String) throws -> [UInt8] {
        let target = name.hasPrefix("/") ? name : file(name)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: target)))
    }

    /// Writes `count` random bytes to `name` and returns them.
    func randomFile(_ name: String, count: Int) throws -> [UInt8] {
        let bytes = randomBytes(count)
        try write(name, bytes)
        return bytes
    }
}

/// `count` bytes from the kernel's random source.
func randomBytes(_ count: Int) -> [UInt8] {
    guard count > 0 else { return [] }
    let source = FileHandle(forReadingAtPath: "/dev/urandom")!
    defer { try? source.close() }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count)
    while bytes.count < count {
        bytes += source.readData(ofLength: count - bytes.count)
    }
    return bytes
}

/// Printable random text (no `~`, so an ssh escape character can never be hit).
func randomText(_ count: Int) -> [UInt8] {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n".utf8)
    return randomBytes(count).map { alphabet[Int($0) % alphabet.count] }
}

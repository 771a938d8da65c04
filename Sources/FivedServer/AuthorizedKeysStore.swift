import FivedCore
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Reads authorized_keys files for an authentication attempt. SPEC: the files are
/// read on every authentication so an edit takes effect at once; this keeps the
/// parsed form keyed by (device, inode, size, mtime) and re-parses whenever any of
/// them changes, which is the same thing without re-parsing unchanged files.
final class AuthorizedKeysStore: Sendable {
    /// Files larger than this are refused whole (sshd reads line by line; a
    /// multi-megabyte authorized_keys file is a mistake or an attack).
    static let maximumFileSize = 4 << 20

    private struct Stamp: Equatable {
        var dev: UInt64, ino: UInt64, size: Int64, mtimeSec: Int, mtimeNsec: Int
    }
    private struct Entry {
        var stamp: Stamp
        var keys: [AuthorizedKey]
    }
    private let cache = Mutex<[String: Entry]>([:])
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// All keys authorized for `user` by the configured file patterns.
    func keys(for user: String, patterns: [String]) -> [AuthorizedKey] {
        let home = Self.home(of: user)
        var all: [AuthorizedKey] = []
        for pattern in patterns {
            guard var path = AuthorizedKeysParser.expandPath(pattern, user: user, home: home) else { continue }
            if !path.hasPrefix("/") {
                // As sshd's AuthorizedKeysFile: a relative path is taken from the user's home.
                guard let home else { continue }
                path = home + "/" + path
            }
            all += keys(atPath: path)
        }
        return all
    }

    private func keys(atPath path: String) -> [AuthorizedKey] {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return [] }
        let stamp = Stamp(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino), size: Int64(st.st_size),
                          mtimeSec: Int(st.st_mtim.tv_sec), mtimeNsec: Int(st.st_mtim.tv_nsec))
        if let hit = cache.withLock({ $0[path] }), hit.stamp == stamp {
            return hit.keys
        }
        guard st.st_size <= Self.maximumFileSize else {
            logger.warning("authorized_keys file too large, ignored", metadata: ["file": "\(path)", "size": "\(st.st_size)"])
            return []
        }
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let text = String(decoding: data, as: UTF8.self)
        let parsed = AuthorizedKeysParser.parseFile(text, path: path)
        for problem in parsed.problems {
            logger.warning("authorized_keys line not honoured", metadata: ["reason": "\(problem.message)"])
        }
        cache.withLock { $0[path] = Entry(stamp: stamp, keys: parsed.keys) }
        return parsed.keys
    }

    /// The user's home directory from the password database, for `%h`.
    static func home(of user: String) -> String? {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwnam_r(user, &pwd, &buffer, buffer.count, &result)
        guard rc == 0, result != nil, let dir = pwd.pw_dir else { return nil }
        return String(cString: dir)
    }
}

import FivedCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The parsed form of files read on every authentication (trusted CA keys,
/// principals, revocation lists), kept by path with the file's device, inode,
/// size and modification time: a file is parsed again as soon as any of these
/// changes, so an edit or a replacement takes effect at the next attempt with no
/// reload, and an unchanged file costs one stat(2). Shared by every worker.
final class ParsedFiles<Value: Sendable>: Sendable {
    /// What reading a path came to.
    enum Read: Sendable {
        case parsed(Value)
        /// The file does not exist (ENOENT, ENOTDIR).
        case missing
        /// It exists but could not be used: not a regular file, too large, unreadable.
        case unreadable(String)
    }

    private let cache = Mutex<[String: (stamp: FileStamp, value: Value)]>([:])
    /// Files larger than this are not read (`.unreadable`).
    let maximumSize: Int
    private let parse: @Sendable ([UInt8], String) -> Value

    /// `parse` turns a file's bytes and path into its value (it must not fail:
    /// a value records its own problems).
    init(maximumSize: Int, parse: @escaping @Sendable (_ contents: [UInt8], _ path: String) -> Value) {
        self.maximumSize = maximumSize
        self.parse = parse
    }

    /// The file at `path`, parsed (from the cache when unchanged).
    func read(_ path: String) -> Read {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            return e == ENOENT || e == ENOTDIR ? .missing : .unreadable(String(cString: strerror(e)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .unreadable("not a regular file") }
        let stamp = FileStamp(st)
        if let hit = cache.withLock({ $0[path] }), hit.stamp == stamp { return .parsed(hit.value) }
        guard st.st_size <= maximumSize else { return .unreadable("larger than \(maximumSize) bytes") }
        guard let contents = Self.contents(of: path, limit: maximumSize) else {
            return .unreadable(String(cString: strerror(errno)))
        }
        let value = parse(contents, path)
        cache.withLock { $0[path] = (stamp, value) }
        return .parsed(value)
    }

    /// Reads at most `limit` bytes of a file; nil (errno set) when it cannot be opened or read.
    private static func contents(of path: String, limit: Int) -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        return FileContents.read(fd, limit: limit)
    }
}

extension FileStamp {
    /// The identity of the file `st` describes.
    init(_ st: stat) {
        self.init(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
            modifiedSeconds: Int64(st.st_mtim.tv_sec), modifiedNanoseconds: Int64(st.st_mtim.tv_nsec))
    }
}

/// Whole-file reads from a descriptor, bounded.
enum FileContents {
    /// Reads from `fd` to its end, at most `limit` + 1 bytes (so a caller can tell
    /// "too large"); nil (errno set) on a read error.
    static func read(_ fd: Int32, limit: Int) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes += chunk[..<n]
        }
        return bytes
    }
}

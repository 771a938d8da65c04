import FivedCore
import FivedSystem
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What reading the authorized_keys files for one authentication found: the keys,
/// and, for the log line of a failed attempt, which files were read and which not.
struct AuthorizedKeysLookup: Sendable {
    /// Every key line of the files read, in order.
    var keys: [AuthorizedKey] = []
    /// The files read (patterns expanded, relative paths taken from the home).
    var read: [String] = []
    /// Files that do not exist, and patterns that could not be expanded for this
    /// user (`%h` or a relative path for a user with no home), each with why.
    var missing: [String] = []
    /// Files not read because they or a directory above them could be changed by
    /// someone else (sshd's StrictModes): `PATH (why)`.
    var unsafe: [String] = []
    /// Files not read for another reason (not a regular file, no permission, too large): `PATH (why)`.
    var unreadable: [String] = []
}

/// Reads authorized_keys files for an authentication attempt. SPEC: the files are
/// read on every authentication so an edit takes effect at once; this keeps the
/// parsed form keyed by (device, inode, size, mtime) and re-parses whenever any of
/// them changes, which is the same thing without re-parsing unchanged files.
///
/// Like sshd with StrictModes (its default), a file is not read when it, or a
/// directory above it, is writable by group or others, or is owned by anyone but
/// root, the user logging in or the user fived runs as. Unlike sshd, a directory
/// with the sticky bit (/tmp) is accepted: nobody else can replace what is in it.
final class AuthorizedKeysStore: Sendable {
    /// Files larger than this are refused whole (sshd reads line by line; a
    /// multi-megabyte authorized_keys file is a mistake or an attack).
    static let maximumFileSize = 4 << 20

    private struct Entry {
        var stamp: FileStamp
        var keys: [AuthorizedKey]
    }
    private let cache = Mutex<[String: Entry]>([:])
    private let logger: Logger
    /// Set when the daemon dropped root: users' files are then opened by the
    /// spawner, as their users (the daemon can no longer read a 0600 file in a
    /// 0700 home), and read here from the descriptors it passes.
    private let spawner: SpawnerLink?

    init(logger: Logger, spawner: SpawnerLink? = nil) {
        self.logger = logger
        self.spawner = spawner
    }

    /// The keys of files that are fived's own configuration (the fleet's
    /// peers_authorized_keys), read by the daemon itself, never through the spawner.
    func ownKeys(for user: String, patterns: [String]) -> [AuthorizedKey] {
        read(for: user, patterns: patterns).keys
    }

    /// The keys authorized for `user` by the configured `authorized_keys`
    /// patterns, with an account of which files were read, missing, unsafe or
    /// unreadable. `completion` runs once: at once, on this thread, when the
    /// daemon reads the files itself; after root was dropped the spawner opens
    /// them (it applies the same patterns from its own copy of the
    /// configuration) and `completion` runs later on another thread, the
    /// caller waiting for nothing.
    func lookup(for user: String, patterns: [String], completion: @escaping @Sendable (AuthorizedKeysLookup) -> Void) {
        guard let spawner else {
            completion(read(for: user, patterns: patterns))
            return
        }
        spawner.openFiles(user: user, principals: false) { files in
            completion(self.read(opened: files))
        }
    }

    /// Reads the files `patterns` name for `user` itself, with sshd's StrictModes.
    private func read(for user: String, patterns: [String]) -> AuthorizedKeysLookup {
        let account = PasswordEntry(named: user)
        var owners: Set<uid_t> = [0, geteuid()]
        if let account { owners.insert(account.uid) }
        var found = AuthorizedKeysLookup()
        for pattern in patterns {
            guard let path = Self.resolve(pattern, user: user, home: account?.home) else {
                found.missing.append("\(pattern) (\(Self.displayUser(user)) has no home directory)")
                continue
            }
            if found.read.contains(path) { continue }
            var st = stat()
            guard stat(path, &st) == 0 else {
                if errno == ENOENT || errno == ENOTDIR {
                    found.missing.append(path)
                } else {
                    found.unreadable.append("\(path) (\(String(cString: strerror(errno))))")
                }
                continue
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                found.unreadable.append("\(path) (not a regular file)")
                continue
            }
            if let problem = Self.strictModesProblem(path: path, owners: owners, home: account?.home) {
                found.unsafe.append("\(path) (\(problem))")
                continue
            }
            guard let keys = keys(atPath: path, FileStamp(st)) else {
                found.unreadable.append("\(path) (\(st.st_size > Self.maximumFileSize ? "larger than 4 MiB" : "cannot be read"))")
                continue
            }
            found.read.append(path)
            found.keys += keys
        }
        return found
    }

    /// The files the spawner opened (it applies the patterns of its own copy
    /// of the configuration, and StrictModes), read from their descriptors.
    /// A spawner that did not answer (nil) reads as no file at all (fail closed).
    private func read(opened: [(SpawnerEvent.FileEntry, Descriptor?)]?) -> AuthorizedKeysLookup {
        var found = AuthorizedKeysLookup()
        guard let files = opened else {
            found.unreadable.append("(the spawner did not answer)")
            return found
        }
        for (entry, descriptor) in files {
            switch entry.status {
            case .missing: found.missing.append(entry.reason.isEmpty ? entry.path : "\(entry.path) (\(entry.reason))")
            case .unsafe: found.unsafe.append("\(entry.path) (\(entry.reason))")
            case .unreadable: found.unreadable.append("\(entry.path) (\(entry.reason))")
            case .opened:
                // The contents as the spawner read them, in a sealed memfd: no
                // read here can wait on a user's file system.
                guard let descriptor, let stamp = entry.stamp else { continue }
                defer { descriptor.close() }
                guard let keys = keys(atPath: entry.path, stamp, from: descriptor.rawValue) else {
                    found.unreadable.append("\(entry.path) (\(stamp.size > Self.maximumFileSize ? "larger than 4 MiB" : "cannot be read"))")
                    continue
                }
                found.read.append(entry.path)
                found.keys += keys
            }
        }
        return found
    }

    /// `pattern` with `%u`, `%h` and `%%` expanded and a relative path taken from
    /// `home`, as sshd's AuthorizedKeysFile; nil when it needs a home there is none of.
    static func resolve(_ pattern: String, user: String, home: String?) -> String? {
        guard let path = AuthorizedKeysParser.expandPath(pattern, user: user, home: home) else { return nil }
        if path.hasPrefix("/") { return path }
        guard let home, !home.isEmpty else { return nil }
        return home.hasSuffix("/") ? home + path : home + "/" + path
    }

    /// Why sshd's StrictModes would refuse the regular file at `path`, or nil when
    /// it is safe: the file and each directory above it (up to the user's home when
    /// it is inside it, else up to /) must belong to one of `owners` and not be
    /// writable by group or others; a sticky directory may be writable.
    static func strictModesProblem(path: String, owners: Set<uid_t>, home: String?) -> String? {
        guard let real = realpath(path, nil) else { return nil }  // stat just succeeded; a race is not a problem of modes
        let resolved = String(cString: real)
        free(real)
        var st = stat()
        guard stat(resolved, &st) == 0 else { return nil }
        if !owners.contains(st.st_uid) { return "owned by \(ownerName(st.st_uid)), not root or the user" }
        if st.st_mode & 0o022 != 0 {
            return "file is writable by \(st.st_mode & 0o020 != 0 ? "group" : "others") (mode \(String(st.st_mode & 0o7777, radix: 8)))"
        }
        let homeDirectory = home.flatMap { h -> String? in
            guard let r = realpath(h, nil) else { return nil }
            defer { free(r) }
            return String(cString: r)
        }
        var directory = resolved
        while let slash = directory.lastIndex(of: "/") {
            directory = slash == directory.startIndex ? "/" : String(directory[..<slash])
            guard stat(directory, &st) == 0 else { return nil }
            if !owners.contains(st.st_uid) { return "directory \(directory) is owned by \(ownerName(st.st_uid)), not root or the user" }
            if st.st_mode & 0o022 != 0 && st.st_mode & S_ISVTX == 0 {
                return "directory \(directory) is writable by \(st.st_mode & 0o020 != 0 ? "group" : "others") (mode \(String(st.st_mode & 0o7777, radix: 8)))"
            }
            if directory == "/" || directory == homeDirectory { break }
        }
        return nil
    }

    /// The keys of the regular file at `path` (whose stat is `st`), from the cache
    /// when it has not changed; nil when it is too large or cannot be read. With
    /// `descriptor`, the file is read from it rather than opened by path.
    private func keys(atPath path: String, _ stamp: FileStamp, from descriptor: Int32? = nil) -> [AuthorizedKey]? {
        if let hit = cache.withLock({ $0[path] }), hit.stamp == stamp {
            return hit.keys
        }
        guard stamp.size <= Self.maximumFileSize else {
            logger.warning("authorized_keys file too large, ignored", metadata: ["file": "\(path)", "size": "\(stamp.size)"])
            return nil
        }
        let bytes: [UInt8]?
        if let descriptor {
            bytes = FileContents.read(descriptor, limit: Self.maximumFileSize)
        } else {
            bytes = FileManager.default.contents(atPath: path).map { Array($0) }
        }
        guard let bytes else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        let parsed = AuthorizedKeysParser.parseFile(text, path: path)
        for problem in parsed.problems {
            logger.warning("authorized_keys line not honoured", metadata: ["reason": "\(problem.message)"])
        }
        cache.withLock { $0[path] = Entry(stamp: stamp, keys: parsed.keys) }
        return parsed.keys
    }

    /// The user's home directory from the password database, for `%h`.
    static func home(of user: String) -> String? {
        PasswordEntry(named: user)?.home
    }

    /// A user name as the log shows it inside a value: control characters escaped.
    private static func displayUser(_ user: String) -> String { DisplayText.escaped(user) }

    /// The name of `uid`, or `uid N` when it has none.
    static func ownerName(_ uid: uid_t) -> String {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &pwd, &buffer, buffer.count, &result) == 0, result != nil, let name = pwd.pw_name else { return "uid \(uid)" }
        return String(cString: name)
    }
}

/// A password database entry: the home and uid of a user name.
struct PasswordEntry {
    var uid: uid_t
    var home: String?

    init?(named user: String) {
        guard !user.isEmpty, !user.utf8.contains(0) else { return nil }
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(user, &pwd, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        uid = pwd.pw_uid
        home = pwd.pw_dir.map { String(cString: $0) }
    }

    init?(uid: uid_t) {
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &pwd, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        self.uid = uid
        home = pwd.pw_dir.map { String(cString: $0) }
    }
}

/// The notes `fived --check` prints about the authorized_keys patterns: a file
/// that does not exist, a relative path (taken from each user's home, so it is
/// checked for the user running the check), or a file fived would not read.
/// Patterns with `%u` or `%h` depend on who logs in and are not looked at.
public enum AuthorizedKeysCheck {
    /// One `note: ...` line per problem found, in pattern order.
    public static func notes(patterns: [String]) -> [String] {
        let me = PasswordEntry(uid: geteuid())
        let myName = AuthorizedKeysStore.ownerName(geteuid())
        var notes: [String] = []
        for pattern in patterns where !hasUserToken(pattern) {
            let shown = DisplayText.escaped(pattern)
            guard let path = AuthorizedKeysStore.resolve(pattern, user: myName, home: me?.home) else {
                notes.append("note: authorized_keys \(shown) is a relative path, taken from each user's home directory, and \(myName) has none")
                continue
            }
            let relative = !pattern.hasPrefix("/")
            let what =
                relative
                ? "authorized_keys \(shown) is a relative path, taken from each user's home directory (as sshd's AuthorizedKeysFile): for \(myName) that is \(DisplayText.escaped(path)), which"
                : "authorized_keys \(shown)"
            var st = stat()
            guard stat(path, &st) == 0 else {
                let why = errno == ENOENT || errno == ENOTDIR ? "does not exist" : "cannot be read: \(String(cString: strerror(errno)))"
                notes.append("note: \(what) \(why)\(relative ? "; give an absolute path if that is not what you meant" : "")")
                continue
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                notes.append("note: \(what) is not a regular file")
                continue
            }
            if let problem = AuthorizedKeysStore.strictModesProblem(path: path, owners: [0, geteuid()], home: relative ? me?.home : nil) {
                notes.append("note: \(what) will not be read: \(problem) (as sshd's StrictModes)")
            }
        }
        return notes
    }

    /// True when `pattern` has a `%u` or `%h` token (not `%%u`).
    static func hasUserToken(_ pattern: String) -> Bool {
        var iterator = pattern.unicodeScalars.makeIterator()
        while let c = iterator.next() {
            guard c == "%" else { continue }
            let next = iterator.next()
            if next == "u" || next == "h" { return true }
        }
        return false
    }
}

import FivedCore
import FivedSystem
import Foundation
import Logging
import Synchronization

/// The files that decide certificate logins and revocation, as sshd reads them
/// on every authentication: `trusted_user_ca_keys`, `authorized_principals_file`
/// and `revoked_keys`. Each is parsed once per change (`ParsedFiles`); each
/// problem is logged once per version of its file, not once per attempt.
final class CertificateTrust: Sendable {
    private let caFiles = ParsedFiles<ParsedLines<AuthorizedKey>>(maximumSize: 4 << 20) { contents, path in
        let parsed = TrustedCAKeysParser.parseFile(contents, path: path)
        return ParsedLines(lines: parsed.keys, problems: parsed.problems.map(\.message))
    }
    private let principalFiles = ParsedFiles<ParsedLines<AuthorizedPrincipal>>(maximumSize: 4 << 20) { contents, path in
        let parsed = AuthorizedPrincipalsParser.parseFile(contents, path: path)
        return ParsedLines(lines: parsed.entries, problems: parsed.problems.map(\.message))
    }
    private let revocationFiles = ParsedFiles<RevokedKeys>(maximumSize: RevokedKeys.maximumFileSize) { contents, path in
        RevokedKeys(contents: contents, path: path)
    }
    /// Messages already logged, so a broken file is reported once, not per attempt.
    private let logged = Mutex<Set<String>>([])
    private let logger: Logger
    /// Set when the daemon dropped root: principals files (often in users'
    /// homes) are opened by the spawner, as their users.
    private let spawner: SpawnerLink?

    init(logger: Logger, spawner: SpawnerLink? = nil) {
        self.logger = logger
        self.spawner = spawner
    }

    /// The CA keys of every `trusted_user_ca_keys` file, in order. A missing or
    /// unreadable file contributes none (logged once).
    func trustedCAKeys(_ paths: [String]) -> [AuthorizedKey] {
        paths.flatMap { path -> [AuthorizedKey] in
            switch caFiles.read(path) {
            case .parsed(let file):
                file.problems.forEach { warnOnce("trusted_user_ca_keys line not honoured", $0) }
                return file.lines
            case .missing:
                warnOnce("trusted_user_ca_keys file missing", "\(path): no such file: no CA of it is trusted")
                return []
            case .unreadable(let why):
                warnOnce("trusted_user_ca_keys file unreadable", "\(path): \(why): no CA of it is trusted")
                return []
            }
        }
    }

    /// The principals file `pattern` names for `user` (`%u`, `%h`, a relative
    /// path from the home), or nil when no file is configured. A file that does
    /// not exist or cannot be read has no entries, so no certificate is accepted
    /// through `trusted_user_ca_keys` for that user, as with sshd. `completion`
    /// runs once: at once when the daemon reads the file itself; after root was
    /// dropped the spawner opens it, as the user, and `completion` runs later
    /// on another thread.
    func principals(
        pattern: String?, user: String, home: String?, completion: @escaping @Sendable (AuthorizedPrincipalsFile?) -> Void
    ) {
        guard let pattern else {
            completion(nil)
            return
        }
        guard let spawner else {
            completion(read(pattern: pattern, user: user, home: home))
            return
        }
        spawner.openFiles(user: user, principals: true) { files in
            completion(self.read(pattern: pattern, opened: files))
        }
    }

    /// The principals file the spawner opened (nil: it did not answer: no entries).
    private func read(pattern: String, opened: [(SpawnerEvent.FileEntry, Descriptor?)]?) -> AuthorizedPrincipalsFile {
        guard let files = opened, let (entry, descriptor) = files.first else {
            return AuthorizedPrincipalsFile(path: pattern, entries: [])
        }
        guard entry.status == .opened, let descriptor else {
            if entry.status != .missing { warnOnce("authorized_principals_file unreadable", "\(entry.path): \(entry.reason)") }
            return AuthorizedPrincipalsFile(path: entry.path, entries: [])
        }
        defer { descriptor.close() }
        guard let contents = FileContents.read(descriptor.rawValue, limit: 4 << 20), contents.count <= 4 << 20 else {
            warnOnce("authorized_principals_file unreadable", "\(entry.path): cannot be read or larger than 4 MiB")
            return AuthorizedPrincipalsFile(path: entry.path, entries: [])
        }
        let parsed = AuthorizedPrincipalsParser.parseFile(contents, path: entry.path)
        parsed.problems.forEach { warnOnce("authorized_principals_file line not honoured", $0.message) }
        return AuthorizedPrincipalsFile(path: entry.path, entries: parsed.entries)
    }

    /// The principals file `pattern` names for `user`, read by the daemon itself.
    private func read(pattern: String, user: String, home: String?) -> AuthorizedPrincipalsFile {
        guard var path = AuthorizedKeysParser.expandPath(pattern, user: user, home: home) else {
            return AuthorizedPrincipalsFile(path: pattern, entries: [])
        }
        if !path.hasPrefix("/") {
            guard let home, !home.isEmpty else { return AuthorizedPrincipalsFile(path: path, entries: []) }
            path = home.hasSuffix("/") ? home + path : home + "/" + path
        }
        switch principalFiles.read(path) {
        case .parsed(let file):
            file.problems.forEach { warnOnce("authorized_principals_file line not honoured", $0) }
            return AuthorizedPrincipalsFile(path: path, entries: file.lines)
        case .missing:
            return AuthorizedPrincipalsFile(path: path, entries: [])
        case .unreadable(let why):
            warnOnce("authorized_principals_file unreadable", "\(path): \(why)")
            return AuthorizedPrincipalsFile(path: path, entries: [])
        }
    }

    /// Every `revoked_keys` file. One that is missing, unreadable or corrupt
    /// revokes every key (sshd's choice for RevokedKeys), logged once.
    func revokedKeys(_ paths: [String]) -> [RevokedKeys] {
        paths.map { path in
            let file: RevokedKeys
            switch revocationFiles.read(path) {
            case .parsed(let parsed): file = parsed
            case .missing: file = .unreadable(path: path, reason: "no such file")
            case .unreadable(let why): file = .unreadable(path: path, reason: why)
            }
            if let problem = file.problem {
                errorOnce("revoked_keys unusable, every key refused", problem.message)
            }
            return file
        }
    }

    /// Why `key` is revoked by one of `paths`, or nil.
    func revocation(of key: PublicKeyBlob, in paths: [String]) -> Revocation? {
        guard !paths.isEmpty else { return nil }
        return revokedKeys(paths).lazy.compactMap { $0.revocation(of: key) }.first
    }

    private func warnOnce(_ event: String, _ reason: String) {
        guard firstTime(event + reason) else { return }
        logger.warning("\(event)", metadata: ["reason": "\(reason)"])
    }

    private func errorOnce(_ event: String, _ reason: String) {
        guard firstTime(event + reason) else { return }
        logger.error("\(event)", metadata: ["reason": "\(reason)"])
    }

    /// True the first time `message` is seen (the memory is bounded: past 1,024
    /// messages it starts over, so a file edited many times is logged again).
    private func firstTime(_ message: String) -> Bool {
        logged.withLock { seen in
            if seen.count >= 1024 { seen.removeAll() }
            return seen.insert(message).inserted
        }
    }
}

/// A file of lines as a parser gives it: the honoured lines and one message per
/// line that was not.
struct ParsedLines<Line: Sendable>: Sendable {
    var lines: [Line]
    var problems: [String]
}

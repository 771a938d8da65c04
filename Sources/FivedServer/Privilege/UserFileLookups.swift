import CSpawn
import FivedCore
import FivedSystem
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The spawner's `openFiles` requests: each account's lookups run in order on a
/// thread of that account's own, started for them and ended when none is left,
/// so a home on a file system that hangs (a dead NFS server, the user's own FUSE
/// mount) holds up that user's logins only. The spawner's main thread, which
/// starts exec services and answers every other request, never opens a user's
/// file (it does resolve the name: getpwnam, as before).
///
/// Lookups are grouped by account (uid), not by the name asked for, so names
/// that resolve to one account (case-insensitive NSS back ends) share one
/// thread; a name with no account is its own group. Bounds: at most
/// `maximumUsers` groups at once (threads) and `maximumQueuedPerUser` waiting
/// behind each; beyond either, or when no thread can be started, a request is
/// answered at once, every file unreadable, and the login is refused. A request
/// that waited longer than the daemon waits for its answer
/// (`SpawnerRequest.filesAnswerMilliseconds`) is answered without opening
/// anything: that login was already refused.
final class UserFileLookups: Sendable {
    /// One `openFiles` request, with what its thread needs of the configuration.
    struct Request: Sendable {
        let id: UInt64
        let user: String
        /// The configured patterns (`%h`, `%u` ...), at most `SpawnerProtocol.maximumFiles`.
        let patterns: [String]
        /// When it arrived (MonotonicClock ms).
        let arrived: Int64
        /// The account `user` names (`Account.resolve(login:)`), if any.
        var account: Account? = nil

        /// Which thread serves it: the account's, or the name's when there is none.
        var group: String { account.map { "uid \($0.uid)" } ?? "name \(user)" }
    }

    /// The spawner's own identity, read before any lookup thread started, to
    /// which a thread returns after opening a user's file as that user.
    struct Identity: Sendable {
        let uid: uid_t
        let gid: gid_t
        let groups: [gid_t]

        /// The calling process's effective ids and supplementary groups.
        static var current: Identity {
            let count = getgroups(0, nil)
            var groups = [gid_t](repeating: 0, count: Int(max(count, 0)))
            let read = getgroups(Int32(groups.count), &groups)
            return Identity(uid: geteuid(), gid: getegid(), groups: Array(groups.prefix(Int(max(read, 0)))))
        }
    }

    static let maximumUsers = 32
    static let maximumQueuedPerUser = 16
    /// The largest authorized_keys or principals file read (bytes), as the daemon's.
    static let maximumFileSize = AuthorizedKeysStore.maximumFileSize

    private let socket: Int32
    private let privileged: Bool
    private let own: Identity
    private let logger: Logger
    /// The groups (`Request.group`) with a lookup thread, and what waits behind
    /// the one it is doing.
    private let queues = Mutex<[String: [Request]]>([:])

    /// - Parameters:
    ///   - socket: the spawner's end of the socketpair, where answers go.
    ///   - privileged: the spawner runs as root and opens a user's files as the user.
    init(socket: Int32, privileged: Bool, logger: Logger) {
        self.socket = socket
        self.privileged = privileged
        self.own = .current
        self.logger = logger
    }

    /// Queues `request` behind its account's others, or starts the account's
    /// thread; answers at once (every file unreadable) past the bounds.
    func submit(_ asked: Request) {
        var request = asked
        request.account = Account.resolve(login: asked.user)
        let group = request.group
        let admission: Admission = queues.withLock { queues in
            if let waiting = queues[group] {
                guard waiting.count < Self.maximumQueuedPerUser else {
                    return .refused("\(waiting.count + 1) earlier lookups of \(DisplayText.escaped(request.user))'s files have not finished")
                }
                queues[group]!.append(request)
                return .queued
            }
            guard queues.count < Self.maximumUsers else {
                return .refused("\(queues.count) users' file lookups are in progress, the most at once")
            }
            queues[group] = []
            return .startThread
        }
        switch admission {
        case .startThread:
            if let failure = startThread(serving: request) {
                // No thread: this request and any queued behind it meanwhile are refused.
                let stranded = queues.withLock { $0.removeValue(forKey: group) ?? [] }
                for refused in [request] + stranded { answer(refused, refusing: "no thread for the lookup: \(failure)") }
            }
        case .queued:
            break  // behind the account's lookup in progress
        case .refused(let reason):
            answer(request, refusing: reason)
        }
    }

    /// What `submit` decided under the lock.
    private enum Admission {
        case startThread, queued
        case refused(String)
    }

    /// Starts the thread for `request`'s group (pthread_create, whose failure
    /// Foundation's Thread would not report), with every signal blocked from
    /// its first instruction: they are the main thread's (SIGCHLD wakes its
    /// poll), and none interrupts an open. nil when started, else why not.
    private func startThread(serving request: Request) -> String? {
        var all = sigset_t()
        var previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 512 * 1024)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let job = Unmanaged.passRetained(Job(lookups: self, request: request)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, &attributes,
            { raw in
                let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
                _ = fived_name_thread("fived-files")
                job.lookups.serve(job.request)
                return nil
            }, job)
        guard rc != 0 else { return nil }
        Unmanaged<Job>.fromOpaque(job).release()
        return errnoText(rc)
    }

    /// What a new thread is handed.
    private final class Job {
        let lookups: UserFileLookups
        let request: Request
        init(lookups: UserFileLookups, request: Request) {
            self.lookups = lookups
            self.request = request
        }
    }

    /// A group's thread: the request it was started for, then each one queued
    /// behind it, until none is left.
    private func serve(_ first: Request) {
        var next: Request? = first
        while let request = next {
            let waited = MonotonicClock.now - request.arrived
            if waited > SpawnerRequest.filesAnswerMilliseconds {
                answer(request, refusing: "waited \(waited) ms behind an earlier lookup of \(DisplayText.escaped(request.user))'s files")
            } else {
                let (entries, opened) = open(request)
                Spawner.send(.files(id: request.id, entries: entries), fds: opened, on: socket, logger: logger)
                opened.forEach { $0.close() }
            }
            next = queues.withLock { queues in
                guard var waiting = queues[request.group], !waiting.isEmpty else {
                    queues[request.group] = nil
                    return nil
                }
                let head = waiting.removeFirst()
                queues[request.group] = waiting
                return head
            }
        }
    }

    private func answer(_ request: Request, refusing reason: String) {
        let home = request.account?.home
        let entries = request.patterns.map { pattern in
            SpawnerEvent.FileEntry(
                path: AuthorizedKeysStore.resolve(pattern, user: request.user, home: home) ?? pattern, status: .unreadable, reason: reason)
        }
        Spawner.send(.files(id: request.id, entries: entries), on: socket, logger: logger)
    }

    /// Opens the files `request` names, a user's own as that user (sshd's
    /// temporarily_use_uid, here for this thread alone) so that a link in them
    /// reaches nothing the user could not read; fived's own (/etc/fived/...,
    /// or for names that are no account here) as the spawner.
    private func open(_ request: Request) -> ([SpawnerEvent.FileEntry], [Descriptor]) {
        let user = request.user
        let account = request.account
        var entries: [SpawnerEvent.FileEntry] = []
        var opened: [Descriptor] = []
        for pattern in request.patterns {
            guard let path = AuthorizedKeysStore.resolve(pattern, user: user, home: account?.home) else {
                entries.append(.init(path: pattern, status: .missing, reason: "\(DisplayText.escaped(user)) has no home directory"))
                continue
            }
            let asUser = privileged && account.map { Spawner.belongs(path, to: $0) } == true
            if asUser, let account {
                let rc = account.groups.withUnsafeBufferPointer {
                    fived_thread_assume_identity(account.uid, account.gid, $0.baseAddress, Int32($0.count))
                }
                guard rc == 0 else {
                    let reason = "cannot take \(account.name)'s identity: \(errnoText(errno))"
                    restoreIdentity()
                    entries.append(.init(path: path, status: .unreadable, reason: reason))
                    continue
                }
            }
            let fd = Glibc.open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
            let openErrno = errno
            if asUser { restoreIdentity() }
            guard fd >= 0 else {
                let missing = openErrno == ENOENT || openErrno == ENOTDIR
                entries.append(.init(path: path, status: missing ? .missing : .unreadable, reason: missing ? "" : errnoText(openErrno)))
                continue
            }
            defer { Glibc.close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                entries.append(.init(path: path, status: .unreadable, reason: "not a regular file"))
                continue
            }
            var owners: Set<uid_t> = [0, own.uid]
            if let account { owners.insert(account.uid) }
            if let problem = AuthorizedKeysStore.strictModesProblem(path: path, owners: owners, home: account?.home) {
                entries.append(.init(path: path, status: .unsafe, reason: problem))
                continue
            }
            // Read here, on this account's thread, and handed over as a sealed
            // copy: a file system that answers the open but hangs the read (a
            // user's FUSE mount) holds up this account's lookups only, never
            // the daemon's thread that takes every spawner answer.
            let contents = FileContents.read(fd, limit: Self.maximumFileSize)
            let readErrno = errno
            guard let contents else {
                entries.append(.init(path: path, status: .unreadable, reason: errnoText(readErrno)))
                continue
            }
            guard contents.count <= Self.maximumFileSize else {
                entries.append(.init(path: path, status: .unreadable, reason: "larger than 4 MiB"))
                continue
            }
            let copy = contents.withUnsafeBytes { fived_sealed_copy($0.baseAddress, $0.count) }
            guard copy >= 0 else {
                entries.append(.init(path: path, status: .unreadable, reason: "cannot copy it: \(errnoText(errno))"))
                continue
            }
            entries.append(.init(path: path, status: .opened, stamp: FileStamp(st)))
            opened.append(Descriptor(copy))
        }
        return (entries, opened)
    }

    /// Returns this thread to the spawner's identity; a thread that cannot
    /// stops the spawner rather than go on as the user.
    private func restoreIdentity() {
        let rc = own.groups.withUnsafeBufferPointer {
            fived_thread_restore_identity(own.uid, own.gid, $0.baseAddress, Int32($0.count))
        }
        guard rc == 0 else {
            logger.critical("spawner could not restore its identity", metadata: ["reason": "\(errnoText(errno))"])
            _exit(1)  // at once: no atexit handler runs while other threads go on
        }
    }
}

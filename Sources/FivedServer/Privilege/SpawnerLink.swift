import CSpawn
import CSystem
import FivedCore
import FivedSystem
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's end of the socketpair to its spawner (`Spawner`): requests go
/// out from any worker thread (one datagram each, so they never interleave);
/// a reader thread takes the spawner's events and runs the completion each
/// request registered, which hands the result to its worker's inbox. If the
/// spawner goes away, every waiting request fails and every later one too: no
/// exec service starts without it.
public final class SpawnerLink: @unchecked Sendable {
    /// The spawner process (a child of the daemon).
    public let pid: pid_t
    /// The daemon's end of the socketpair (logged, for the tests that forge requests).
    public var descriptor: Int32 { socket.rawValue }
    private let socket: Descriptor
    private let logger: Logger

    private struct State {
        var nextID: UInt64 = 0
        var waiting: [UInt64: @Sendable (SpawnerEvent, [Descriptor]) -> Void] = [:]
        /// What to run when the child a `spawn` or `runCommand` request started
        /// exits, by the request's id (as the spawner reports the exit: a pid
        /// may already be another child's).
        var exitHandlers: [UInt64: @Sendable (Int32) -> Void] = [:]
        var closed = false
        /// The daemon is stopping: the spawner's end closing is expected.
        var stopping = false
    }
    private let state = Mutex(State())
    private var reader: Thread?

    private init(pid: pid_t, socket: Descriptor, logger: Logger) {
        self.pid = pid
        self.socket = socket
        self.logger = logger
    }

    /// Starts `executable --internal-spawner ARGUMENTS` with the spawner's end
    /// of a new socketpair as descriptor 3 and nothing else above 2, and starts
    /// reading its events.
    static func start(executable: String, arguments: [String], logger: Logger) throws(SystemError) -> SpawnerLink {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw SystemError("socketpair", errno: errno)
        }
        let ours = Descriptor(pair[0])
        let theirs = Descriptor(pair[1])
        defer { theirs.close() }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, theirs.rawValue, 3)
        _ = fived_spawn_addclosefrom(&actions, 4)
        var attr = ChildAttributes(newSession: false)
        defer { attr.destroy() }
        let argv = [executable, "--internal-spawner"] + arguments
        let cArgv = argv.map { strdup($0) } + [nil]
        defer { cArgv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attr.value, cArgv, environ)
        guard rc == 0 else { throw SystemError("posix_spawn", errno: rc, subject: executable) }
        return SpawnerLink(pid: pid, socket: ours, logger: logger)
    }

    /// Starts the thread that takes the spawner's answers. Called after the
    /// daemon dropped its privileges: a capability bounding set and
    /// no_new_privs are per thread, and threads inherit them from their creator
    /// (the authorized_keys_command readers are this thread's).
    func startReading() {
        let thread = Thread {
            _ = fived_name_thread("fived-spawnlink")  // as ps -L and /proc/PID/task show it (15 bytes at most)
            self.readEvents()
        }
        thread.start()
        reader = thread
    }

    // MARK: Requests

    /// Sends `request` with `fds`; `completion` runs on the reader thread with
    /// the answer (or `.spawnFailed`/`.commandFailed`-like failure when the
    /// spawner is gone). Returns false when it could not be sent.
    @discardableResult
    private func send(
        _ make: (UInt64) -> SpawnerRequest, fds: [Int32] = [], onExit: (@Sendable (Int32) -> Void)? = nil,
        completion: (@Sendable (SpawnerEvent, [Descriptor]) -> Void)? = nil
    ) -> Bool {
        sendRequest(make, fds: fds, onExit: onExit, completion: completion) != nil
    }

    /// `send`, returning the request's id (nil when it could not be sent).
    private func sendRequest(
        _ make: (UInt64) -> SpawnerRequest, fds: [Int32] = [], onExit: (@Sendable (Int32) -> Void)? = nil,
        completion: (@Sendable (SpawnerEvent, [Descriptor]) -> Void)? = nil
    ) -> UInt64? {
        let id: UInt64? = state.withLock { s in
            guard !s.closed else { return nil }
            s.nextID += 1
            if let completion { s.waiting[s.nextID] = completion }
            if let onExit { s.exitHandlers[s.nextID] = onExit }
            return s.nextID
        }
        guard let id else { return nil }
        let bytes = make(id).encoded()
        let n = bytes.withUnsafeBytes { b in
            fds.withUnsafeBufferPointer { f in
                fived_send_with_fds(socket.rawValue, b.baseAddress, b.count, f.baseAddress, Int32(f.count))
            }
        }
        if n < 0 {
            state.withLock { s in
                s.waiting.removeValue(forKey: id)
                s.exitHandlers.removeValue(forKey: id)
            }
            logger.error("the spawner cannot be reached", metadata: ["reason": "\(errnoText(errno))"])
            return nil
        }
        return id
    }

    /// Asks for configured exec service `service` to be started on `fds` (see
    /// `SpawnerRequest.spawn`). `started` gets the child or why not; `exited` the
    /// wait status later. Both run on the reader thread.
    func spawn(
        service: ServiceName, environment: [String], source: String, terminal: Bool, fds: [Int32],
        started: @escaping @Sendable (Result<SpawnedChild, BackendFailure>) -> Void, exited: @escaping @Sendable (Int32) -> Void
    ) {
        let sent = send(
            { .spawn(id: $0, service: service.value, environment: environment, source: source, terminal: terminal) }, fds: fds,
            onExit: exited
        ) { event, _ in
            switch event {
            case .spawned(let id, _): started(.success(SpawnedChild(request: id)))
            case .spawnFailed(_, let reason): started(.failure(BackendFailure(.spawn, reason)))
            default: started(.failure(BackendFailure(.spawn, "the spawner answered \(event)")))
            }
        }
        if !sent { started(.failure(BackendFailure(.spawn, "the spawner is gone"))) }
    }

    /// Delivers `signal` to `child`'s process group (unless it was reaped).
    func signal(_ child: SpawnedChild, _ signal: Int32) {
        send({ _ in .signal(child: child.request, signal: signal) })
    }

    /// Gives `child` up: SIGHUP now, SIGKILL 2 s later.
    func retire(_ child: SpawnedChild) {
        state.withLock { _ = $0.exitHandlers.removeValue(forKey: child.request) }
        send({ _ in .retire(child: child.request) })
    }

    /// The spawner reads its configuration again.
    func reload(_ done: @escaping @Sendable (String?) -> Void) {
        let sent = send(
            { .reload(id: $0) },
            completion: { event, _ in
                if case .reloaded(_, let reason) = event { done(reason) } else { done("the spawner answered \(event)") }
            })
        if !sent { done("the spawner is gone") }
    }

    /// `reload`, waiting up to `timeoutMilliseconds` for the answer: nil when the
    /// spawner took the new configuration, else why not.
    func reloadWaiting(timeoutMilliseconds: Int = 15000) -> String? {
        let answer = Mutex<String?>("the spawner did not answer")
        let done = DispatchSemaphore(value: 0)
        reload { problem in
            answer.withLock { $0 = problem }
            done.signal()
        }
        guard done.wait(timeout: .now() + .milliseconds(timeoutMilliseconds)) == .success else { return "the spawner did not answer" }
        return answer.withLock { $0 }
    }

    /// Opens the authorized_keys files (or principals file) of SSH user `user`
    /// through the spawner. `completion` runs once: on the reader thread with
    /// each entry and its descriptor when opened, or with nil when the spawner
    /// is gone or did not answer within `timeoutMilliseconds` (then on a
    /// timer's thread; a late answer finds no completion and its descriptors
    /// are closed). Nothing waits meanwhile: a home on a file system that
    /// hangs holds up only this request.
    func openFiles(
        user: String, principals: Bool, timeoutMilliseconds: Int = Int(SpawnerRequest.filesAnswerMilliseconds),
        completion: @escaping @Sendable ([(SpawnerEvent.FileEntry, Descriptor?)]?) -> Void
    ) {
        let sent = sendRequest(
            { .openFiles(id: $0, user: user, principals: principals) },
            completion: { event, fds in
                guard case .files(_, let entries) = event else {
                    fds.forEach { $0.close() }
                    completion(nil)
                    return
                }
                var remaining = fds[...]
                let paired = entries.map { entry -> (SpawnerEvent.FileEntry, Descriptor?) in
                    guard entry.status == .opened, let fd = remaining.popFirst() else { return (entry, nil) }
                    return (entry, fd)
                }
                remaining.forEach { $0.close() }
                completion(paired)
            })
        guard let id = sent else {
            completion(nil)
            return
        }
        // Whoever takes the request out of `waiting` first answers it: the
        // reader with the spawner's answer, or this timer with nil. The timer
        // holds only the id: what the completion holds (the waiting login) is
        // let go as soon as the answer comes, not when the timer fires.
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(timeoutMilliseconds)) { [weak self] in
            guard let self, let expired = state.withLock({ $0.waiting.removeValue(forKey: id) }) else { return }
            logger.warning(
                "the spawner did not open authorized_keys files in time",
                metadata: ["user": "\(user)", "timeout_ms": "\(timeoutMilliseconds)"])
            expired(.spawnFailed(id: id, reason: "no answer within \(timeoutMilliseconds) ms"), [])
        }
    }

    /// Runs the authorized_keys_command for `user` and the presented key;
    /// `started` gets its stdout (and pid) or why not; `exited` its wait status.
    func runCommand(
        user: String, key: PublicKeyBlob, started: @escaping @Sendable (Result<(SpawnedChild, Descriptor), BackendFailure>) -> Void,
        exited: @escaping @Sendable (Int32) -> Void
    ) {
        let sent = send(
            { .runCommand(id: $0, user: user, keyType: key.keyType, fingerprint: key.fingerprint, keyBase64: key.base64) },
            onExit: exited
        ) { event, fds in
            switch event {
            case .commandStarted(let id, _) where fds.count == 1: started(.success((SpawnedChild(request: id), fds[0])))
            case .commandFailed(_, let reason): started(.failure(BackendFailure(.spawn, reason)))
            default: started(.failure(BackendFailure(.spawn, "the spawner answered \(event)")))
            }
        }
        if !sent { started(.failure(BackendFailure(.spawn, "the spawner is gone"))) }
    }

    /// Closes the link: the spawner retires its children and exits; waits up
    /// to `timeoutMilliseconds` for it.
    func close(timeoutMilliseconds: Int64 = 3000) {
        state.withLock { $0.stopping = true }
        _ = Glibc.shutdown(socket.rawValue, Int32(SHUT_RDWR))
        if reaped(within: timeoutMilliseconds) { return }
        // Not waited for without end: a spawner thread in an uninterruptible
        // wait (a FUSE request its server has taken, fs/fuse/dev.c) keeps the
        // process from dying even after SIGKILL.
        _ = kill(pid, SIGKILL)
        if reaped(within: timeoutMilliseconds) { return }
        logger.warning("the spawner did not end after SIGKILL; fived stops without it", metadata: ["spawner": "\(pid)"])
    }

    /// Reaps the spawner if it ends within `milliseconds`; true when it did (or was already reaped).
    private func reaped(within milliseconds: Int64) -> Bool {
        let deadline = MonotonicClock.now + milliseconds
        var status: Int32 = 0
        while MonotonicClock.now < deadline {
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid || (rc < 0 && errno == ECHILD) { return true }
            usleep(20_000)
        }
        return false
    }

    // MARK: Events

    private func readEvents() {
        var buffer = [UInt8](repeating: 0, count: SpawnerProtocol.maximumMessageSize)
        var fdArray = [Int32](repeating: -1, count: Int(FIVED_MAX_FDS))
        while true {
            var count: Int32 = 0
            let n = buffer.withUnsafeMutableBytes { raw in
                fived_receive_with_fds(socket.rawValue, raw.baseAddress, raw.count, &fdArray, FIVED_MAX_FDS, &count)
            }
            if n < 0 && (errno == EINTR || errno == EMSGSIZE) { continue }
            if n <= 0 { break }
            let fds = fdArray.prefix(Int(count)).map { Descriptor($0) }
            let event: SpawnerEvent
            do {
                event = try SpawnerEvent(decoding: Array(buffer[..<n]), descriptors: fds.count)
            } catch {
                fds.forEach { $0.close() }
                logger.error("unreadable message from the spawner", metadata: ["reason": "\(error)"])
                continue
            }
            dispatch(event, fds)
        }
        let orphaned = state.withLock { s -> [@Sendable (SpawnerEvent, [Descriptor]) -> Void] in
            s.closed = true
            defer { s.waiting.removeAll() }
            return Array(s.waiting.values)
        }
        for completion in orphaned { completion(.spawnFailed(id: 0, reason: "the spawner went away"), []) }
        guard !state.withLock({ $0.stopping }) else { return }
        // Without its spawner fived can start no service and read no user's
        // authorized_keys: it stops, with a status a supervisor restarts on.
        logger.critical("the spawner went away: fived stops", metadata: ["spawner": "\(pid)"])
        _exit(70)  // EX_SOFTWARE
    }

    private func dispatch(_ event: SpawnerEvent, _ fds: [Descriptor]) {
        switch event {
        case .exited(let child, _, let status):
            let handler = state.withLock { $0.exitHandlers.removeValue(forKey: child) }
            handler?(status)
        case .spawned(let id, _), .commandStarted(let id, _):
            let completion = state.withLock { $0.waiting.removeValue(forKey: id) }
            if let completion {
                completion(event, fds)
            } else {
                fds.forEach { $0.close() }
            }
        case .spawnFailed(let id, _), .commandFailed(let id, _), .files(let id, _), .reloaded(let id, _):
            let completion = state.withLock { s -> (@Sendable (SpawnerEvent, [Descriptor]) -> Void)? in
                s.exitHandlers.removeValue(forKey: id)
                return s.waiting.removeValue(forKey: id)
            }
            if let completion {
                completion(event, fds)
            } else {
                fds.forEach { $0.close() }
            }
        }
    }
}

/// A process the spawner started, named by the id of the `spawn` or
/// `runCommand` request that started it: `signal`, `retire` and its exit report
/// name it so (never reused, unlike its pid).
struct SpawnedChild: Sendable, Hashable {
    let request: UInt64
}

import CSpawn
import FivedCore
import FivedSystem
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The privileged half of fived (the daemon's child, `fived --internal-spawner`):
/// it keeps root (or whatever fived started with) and does only what needs it,
/// on the daemon's request over a SOCK_SEQPACKET socketpair (`SpawnerProtocol`):
/// start configured exec services as their users, signal and retire them, open
/// a user's authorized_keys or principals files as that user, run the
/// authorized_keys_command as its user. One thread serves every request but
/// `openFiles`, whose lookups run on threads of their own (`UserFileLookups`),
/// so a user's hung file system stalls nothing else; those threads take a
/// user's identity for themselves alone (raw setresuid, CSpawn), and fork()
/// stays safe because nothing in a child runs Swift or allocates (CSpawn). It
/// exits when the daemon's end closes, after its children: SIGHUP at once,
/// SIGKILL 2 s later.
///
/// It trusts nothing the daemon sends: a service is named, never a program; the
/// environment is checked against the names SPEC.md lists; files are those the
/// configuration names for a user; signals go only to its own children.
public final class Spawner {
    private let socket: Int32
    private let load: () throws(FivedCoreError) -> Configuration
    private let logger: Logger
    private var configuration: Configuration
    private let privileged = geteuid() == 0

    /// A child the spawner started and has not reaped.
    private struct Child {
        /// The exec service, or nil for an authorized_keys_command.
        var service: ServiceName?
        var source: String
        /// The `spawn` or `runCommand` request that started it.
        var request: UInt64
        /// When a retired child gets SIGKILL (ms, monotonic); nil while in use.
        var killAt: Int64?
    }
    private var children: [pid_t: Child] = [:]
    /// Each unreaped child by the id of the request that started it, as
    /// `signal` and `retire` name it.
    private var started: [UInt64: pid_t] = [:]
    /// The highest request id that started a child: a `signal` for an id at or
    /// below it names a child already reaped (its exit on its way), above it
    /// one no request started (a forged request).
    private var highestStarted: UInt64 = 0
    private let lookups: UserFileLookups

    /// - Parameters:
    ///   - socket: the spawner's end of the socketpair (SOCK_SEQPACKET).
    ///   - load: reads the configuration (at start and on `reload`).
    public init(socket: Int32, load: @escaping () throws(FivedCoreError) -> Configuration, logger: Logger) throws(FivedCoreError) {
        self.socket = socket
        self.load = load
        self.logger = logger
        self.configuration = try load()
        self.lookups = UserFileLookups(socket: socket, privileged: privileged, logger: logger)
    }

    /// Serves the daemon until its end closes; returns the exit status.
    public func run() -> Int32 {
        do {
            try SignalPipe.install([SIGCHLD])
        } catch {
            logger.critical("spawner cannot install its signal handler", metadata: ["reason": "\(error)"])
            return 1
        }
        // The daemon's SIGTERM, SIGINT and SIGHUP are the daemon's business; the
        // spawner ends when the daemon's end of the socket closes.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGHUP, SIG_IGN)
        var buffer = [UInt8](repeating: 0, count: SpawnerProtocol.maximumMessageSize)
        var open = true
        while open || !children.isEmpty {
            var fds = [
                pollfd(fd: open ? socket : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: SignalPipe.readFD, events: Int16(POLLIN), revents: 0),
            ]
            let now = MonotonicClock.now
            let next = children.values.compactMap(\.killAt).min()
            let timeout = next.map { Int32(clamping: max(0, $0 - now)) } ?? -1
            let rc = poll(&fds, 2, timeout)
            if rc < 0 && errno != EINTR { return 1 }
            if fds[1].revents != 0 {
                _ = SignalPipe.take()
                reap()
            }
            if open && fds[0].revents != 0 {
                open = receive(into: &buffer)
                if !open {
                    // The daemon is gone: its children go too.
                    for pid in children.keys { retire(pid, grace: SpawnerRequest.retireMilliseconds) }
                }
            }
            killDue(now: MonotonicClock.now)
        }
        return 0
    }

    // MARK: Requests

    /// Reads and answers one request; false once the daemon's end closed.
    private func receive(into buffer: inout [UInt8]) -> Bool {
        var fdArray = [Int32](repeating: -1, count: 8)
        var count: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { raw in
            fived_receive_with_fds(socket, raw.baseAddress, raw.count, &fdArray, 8, &count)
        }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return true }
            if errno == EMSGSIZE {
                logger.warning("spawner refused a request", metadata: ["reason": "oversized or truncated datagram"])
                return true
            }
            return false
        }
        if n == 0 { return false }
        let received = fdArray.prefix(Int(count)).map { Descriptor($0) }
        defer { received.forEach { $0.close() } }
        let request: SpawnerRequest
        do {
            request = try SpawnerRequest(decoding: Array(buffer[..<n]), descriptors: received.count)
        } catch {
            logger.warning("spawner refused a request", metadata: ["reason": "\(error)"])
            if let (kind, id) = SpawnerRequest.answerable(Array(buffer[..<n])) {
                let why = "refused by the spawner: \(error)"
                switch kind {
                case 1: send(.spawnFailed(id: id, reason: why))
                case 4: send(.files(id: id, entries: []))
                case 5: send(.commandFailed(id: id, reason: why))
                default: send(.reloaded(id: id, reason: why))
                }
            }
            return true
        }
        handle(request, received)
        return true
    }

    private func handle(_ request: SpawnerRequest, _ fds: [Descriptor]) {
        switch request {
        case .spawn(let id, let service, let environment, let source, let terminal):
            switch spawn(id: id, service: service, environment: environment, source: source, terminal: terminal, fds: fds) {
            case .success(let pid): send(.spawned(id: id, pid: pid))
            case .failure(let why):
                logger.info("service not started", metadata: ["service": "\(ServiceName.printable(service))", "reason": "\(why.reason)"])
                send(.spawnFailed(id: id, reason: why.reason))
            }
        case .signal(let request, let sig):
            guard let pid = started[request], let child = children[pid], child.killAt == nil, Self.deliverableSignals.contains(sig) else {
                // A signal that raced its child's exit is routine; one for a child no request started is not.
                let raced = request <= highestStarted && Self.deliverableSignals.contains(sig)
                logger.log(
                    level: raced ? .debug : .warning, "spawner refused a signal", metadata: ["child": "\(request)", "signal": "\(sig)"])
                return
            }
            _ = kill(-pid, sig)
        case .retire(let request):
            guard let pid = started[request] else { return }
            retire(pid, grace: SpawnerRequest.retireMilliseconds)
        case .openFiles(let id, let user, let principals):
            let patterns = principals ? configuration.authorizedPrincipalsFile.map { [$0] } ?? [] : configuration.authorizedKeys
            lookups.submit(
                .init(id: id, user: user, patterns: Array(patterns.prefix(SpawnerProtocol.maximumFiles)), arrived: MonotonicClock.now))
        case .runCommand(let id, let user, let keyType, let fingerprint, let keyBase64):
            switch runCommand(id: id, user: user, keyType: keyType, fingerprint: fingerprint, keyBase64: keyBase64) {
            case .success(let (pid, output)):
                send(.commandStarted(id: id, pid: pid), fds: [output])
                output.close()
            case .failure(let why):
                send(.commandFailed(id: id, reason: why.reason))
            }
        case .reload(let id):
            do {
                let fresh = try load()
                let problems = ServiceAccounts.problems(fresh)
                guard problems.isEmpty else {
                    send(.reloaded(id: id, reason: problems.joined(separator: "; ")))
                    return
                }
                configuration = fresh
                send(.reloaded(id: id, reason: nil))
            } catch {
                send(.reloaded(id: id, reason: error.message))
            }
        }
    }

    /// The signals the daemon may have delivered to a service (RFC 4254 §6.10's names).
    static let deliverableSignals: Set<Int32> = [SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGABRT, SIGPIPE, SIGWINCH]

    private func send(_ event: SpawnerEvent, fds: [Descriptor] = []) {
        Self.send(event, fds: fds, on: socket, logger: logger)
    }

    /// Sends one answer on the spawner's socket (one datagram: answers from
    /// several threads never interleave).
    static func send(_ event: SpawnerEvent, fds: [Descriptor] = [], on socket: Int32, logger: Logger) {
        let bytes = event.encoded()
        let raw = fds.map(\.rawValue)
        let n = bytes.withUnsafeBytes { b in
            raw.withUnsafeBufferPointer { f in
                fived_send_with_fds(socket, b.baseAddress, b.count, f.baseAddress, Int32(f.count))
            }
        }
        if n < 0 { logger.warning("spawner could not answer the daemon", metadata: ["reason": "\(errnoText(errno))"]) }
    }

    // MARK: Children

    private struct Refusal: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private func spawn(id: UInt64, service rawName: String, environment: [String], source: String, terminal: Bool, fds: [Descriptor])
        -> Result<pid_t, Refusal>
    {
        guard started[id] == nil else { return .failure(Refusal("request id \(id) already names a running child")) }
        guard let name = ServiceName(rawName), let service = configuration.services[name], case .exec(let argv) = service.backend else {
            return .failure(Refusal("\(ServiceName.printable(rawName)) is not a configured exec service"))
        }
        if let problem = SpawnerEnvironment.problem(in: environment, terminal: terminal) { return .failure(Refusal(problem)) }
        guard !terminal || service.pty else { return .failure(Refusal("a terminal for a service without pty = true")) }
        // Every copy not yet reaped counts, retired ones too: a program that
        // ignores SIGHUP still runs for its 2 s of grace.
        let running = children.values.filter { $0.service == name }
        if let limit = service.instances, running.count >= limit {
            return .failure(Refusal("instances (\(limit)) reached"))
        }
        if let limit = service.perSource, running.filter({ $0.source == source }).count >= limit {
            return .failure(Refusal("per_source (\(limit)) reached for \(ServiceName.printable(source))"))
        }
        let account: Account
        if let user = service.user {
            guard let resolved = Account.resolve(user: user, group: service.group) else {
                return .failure(Refusal("no user '\(ServiceName.printable(user))'\(service.group.map { " or group '\(ServiceName.printable($0))'" } ?? "")"))
            }
            guard privileged || resolved.uid == geteuid() else {
                return .failure(Refusal("fived cannot switch to '\(ServiceName.printable(user))'"))
            }
            account = resolved
        } else {
            guard let me = Account.current else { return .failure(Refusal("fived's own user has no password entry")) }
            account = me
        }
        let directory = service.workingDirectory ?? (Self.isDirectory(account.home) ? account.home : "/")
        let env = [CallerHandOff.path] + environment + ["HOME=\(account.home)", "USER=\(account.name)", "LOGNAME=\(account.name)", "SHELL=\(account.shell)"]
        if terminal {
            // Only a pseudo-terminal's slave is made the program's (root's fchown
            // would otherwise give away any file the daemon can open).
            guard Self.isTerminalSlave(fds[0].rawValue) else { return .failure(Refusal("the terminal descriptor is not a pseudo-terminal")) }
            if privileged {
                // The program's terminal belongs to its user, as login(1) leaves it.
                _ = fchmod(fds[0].rawValue, 0o620)  // while still its owner (no CAP_FOWNER needed)
                _ = fchown(fds[0].rawValue, account.uid, gid_t(bitPattern: -1))
            }
        }
        let stdio = fds[0].rawValue
        let stderr = terminal ? stdio : fds[1].rawValue
        let started = start(
            program: argv[0], argv: argv, environment: env, stdin: stdio, stdout: stdio, stderr: stderr, terminal: terminal,
            account: account, umask: mode_t(service.umask), directory: directory, directoryOptional: service.workingDirectory == nil,
            limits: service.processLimits)
        if case .success(let pid) = started {
            children[pid] = Child(service: name, source: source, request: id)
            self.started[id] = pid
            highestStarted = max(highestStarted, id)
        }
        return started
    }

    private func runCommand(id: UInt64, user: String, keyType: String, fingerprint: String, keyBase64: String) -> Result<(pid_t, Descriptor), Refusal> {
        guard started[id] == nil else { return .failure(Refusal("request id \(id) already names a running child")) }
        guard let command = configuration.authorizedKeysCommand, let commandUser = configuration.authorizedKeysCommandUser else {
            return .failure(Refusal("no authorized_keys_command is configured"))
        }
        guard let account = Account.resolve(user: commandUser) else { return .failure(Refusal("no user '\(commandUser)'")) }
        guard privileged || account.uid == geteuid() else { return .failure(Refusal("fived cannot switch to '\(commandUser)'")) }
        // The key's type and fingerprint come from the key itself, not from the daemon.
        guard let key = PublicKeyBlob(base64: keyBase64) else { return .failure(Refusal("the key is not a public key blob")) }
        guard !user.isEmpty, user.utf8.count <= 256, !user.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            return .failure(Refusal("the user name is empty, too long or has a control character"))
        }
        let home = Account.resolve(login: user)?.home ?? ""
        let argv = AuthorizedKeysCommand.argv(
            command, user: user, home: home, keyType: key.keyType, fingerprint: key.fingerprint, keyBase64: key.base64)
        let output: (read: Descriptor, write: Descriptor)
        let null: Int32
        do {
            output = try Syscall.pipe(nonBlocking: false)
            null = try Syscall.retrying("open") { open("/dev/null", O_RDWR | O_CLOEXEC) }
        } catch {
            return .failure(Refusal("authorized_keys_command: \(error)"))
        }
        defer {
            output.write.close()
            Glibc.close(null)
        }
        let env = [CallerHandOff.path, "HOME=\(account.home)", "USER=\(account.name)", "LOGNAME=\(account.name)", "SHELL=\(account.shell)"]
        switch start(
            program: argv[0], argv: argv, environment: env, stdin: null, stdout: output.write.rawValue, stderr: null, terminal: false,
            account: account, umask: 0o077, directory: "/", limits: ProcessLimits())
        {
        case .success(let pid):
            children[pid] = Child(service: nil, source: "", request: id)
            started[id] = pid
            highestStarted = max(highestStarted, id)
            return .success((pid, output.read))
        case .failure(let why):
            output.read.close()
            return .failure(why)
        }
    }

    /// Forks and execs through CSpawn; waits on the close-on-exec status pipe
    /// for exec (EOF) or the step that failed (then reaps the child).
    private func start(
        program: String, argv: [String], environment: [String], stdin: Int32, stdout: Int32, stderr: Int32, terminal: Bool,
        account: Account, umask: mode_t, directory: String, directoryOptional: Bool = false, limits: ProcessLimits
    ) -> Result<pid_t, Refusal> {
        let status: (read: Descriptor, write: Descriptor)
        do {
            status = try Syscall.pipe(nonBlocking: false)
        } catch {
            return .failure(Refusal("exec \(program): \(error)"))
        }
        defer { status.read.close() }
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        let values = [limits.nofile, limits.nproc, limits.asBytes, limits.cpuSeconds]
        let switchIDs = privileged
        let pid: pid_t = program.withCString { path in
            directory.withCString { dir in
                account.groups.withUnsafeBufferPointer { groups in
                    cArgv.withUnsafeBufferPointer { argvBuffer in
                        cEnv.withUnsafeBufferPointer { envBuffer in
                            var spec = fived_child_spec()
                            spec.path = path
                            spec.argv = UnsafePointer(argvBuffer.baseAddress)
                            spec.envp = UnsafePointer(envBuffer.baseAddress)
                            spec.stdin_fd = stdin
                            spec.stdout_fd = stdout
                            spec.stderr_fd = stderr
                            spec.terminal = terminal ? 1 : 0
                            spec.switch_ids = switchIDs ? 1 : 0
                            spec.uid = account.uid
                            spec.gid = account.gid
                            spec.groups = groups.baseAddress
                            spec.ngroups = Int32(groups.count)
                            spec.drop_capabilities = privileged ? 1 : 0
                            spec.umask = umask
                            spec.directory = dir
                            spec.directory_optional = directoryOptional ? 1 : 0
                            withUnsafeMutableBytes(of: &spec.has_limit) { has in
                                withUnsafeMutableBytes(of: &spec.limit) { limit in
                                    for (i, value) in values.enumerated() {
                                        has.storeBytes(of: Int32(value == nil ? 0 : 1), toByteOffset: i * 4, as: Int32.self)
                                        limit.storeBytes(of: UInt64(value ?? 0), toByteOffset: i * 8, as: UInt64.self)
                                    }
                                }
                            }
                            spec.status_fd = status.write.rawValue
                            return fived_start_child(&spec)
                        }
                    }
                }
            }
        }
        let forkErrno = errno
        status.write.close()
        guard pid > 0 else { return .failure(Refusal("exec \(program): fork: \(errnoText(forkErrno))")) }
        var report = [Int32](repeating: 0, count: 2)
        let n = report.withUnsafeMutableBytes { raw in
            var got = 0
            while got < raw.count {
                let r = read(status.read.rawValue, raw.baseAddress! + got, raw.count - got)
                if r < 0 && errno == EINTR { continue }
                if r <= 0 { break }
                got += r
            }
            return got
        }
        guard n == 8 else { return .success(pid) }
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
        return .failure(Refusal("exec \(program): \(Self.stepName(report[0])): \(errnoText(report[1]))"))
    }

    private static func stepName(_ step: Int32) -> String {
        switch step {
        case FIVED_STEP_SIGNALS: return "signal mask"
        case FIVED_STEP_SESSION: return "setsid"
        case FIVED_STEP_TERMINAL: return "controlling terminal"
        case FIVED_STEP_DESCRIPTORS: return "descriptors"
        case FIVED_STEP_LIMITS: return "resource limits"
        case FIVED_STEP_CAPABILITIES: return "dropping capabilities"
        case FIVED_STEP_GROUPS: return "setgroups"
        case FIVED_STEP_GID: return "setgid"
        case FIVED_STEP_UID: return "setuid"
        case FIVED_STEP_NO_NEW_PRIVS: return "no_new_privs"
        case FIVED_STEP_DIRECTORY: return "working directory"
        default: return "execve"
        }
    }

    private static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Reaps every child that ended and tells the daemon.
    private func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 {
                if pid < 0 && errno == EINTR { continue }
                return
            }
            guard let child = children.removeValue(forKey: pid) else { continue }
            started.removeValue(forKey: child.request)
            send(.exited(child: child.request, pid: pid, status: status))
        }
    }

    private func retire(_ pid: pid_t, grace: Int64) {
        guard var child = children[pid], child.killAt == nil else { return }
        _ = kill(-pid, SIGHUP)
        child.killAt = MonotonicClock.now + grace
        children[pid] = child
    }

    private func killDue(now: Int64) {
        for (pid, child) in children {
            guard let at = child.killAt, at <= now else { continue }
            _ = kill(-pid, SIGKILL)
            _ = kill(pid, SIGKILL)
            children[pid]?.killAt = .max  // reaped at its SIGCHLD
        }
    }

    // MARK: Files

    /// True when `path` is `account`'s own file, so that it is opened as that
    /// user: `path` lies inside its home as written, or a component of it (the
    /// file, a directory, or a symbolic link, looked at with lstat, never
    /// followed) belongs to the user, who could have put a link there. Decided
    /// from the path as written: a link the user made (`~/.ssh -> /root/x`) makes
    /// the open the user's, never root's.
    static func belongs(_ path: String, to account: Account) -> Bool {
        guard account.uid != 0, path.hasPrefix("/") else { return account.uid != 0 }
        let home = account.home.hasSuffix("/") ? String(account.home.dropLast()) : account.home
        if !home.isEmpty, path == home || path.hasPrefix(home + "/") { return true }
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            var st = stat()
            guard lstat(prefix, &st) == 0 else { return false }
            if st.st_uid == account.uid { return true }
        }
        return false
    }

    /// True for a Unix 98 pseudo-terminal slave (a character device of majors
    /// 136–143, devices.txt).
    static func isTerminalSlave(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFCHR else { return false }
        let major = (st.st_rdev >> 8) & 0xFFF
        return (136...143).contains(major)
    }
}

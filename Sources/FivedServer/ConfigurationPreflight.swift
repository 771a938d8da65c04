import CSystem
import FivedCore
import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// Checks a configuration in a child process before a reload reads it.
///
/// TOMLKit's parser (toml++) keeps its assertions in release builds, and some
/// malformed files make it abort the process (the fuzzers found three; fived
/// guards those, but toml++ has about thirty). On SIGHUP that would drop every
/// live connection, so the running daemon first has `fived --check` read the
/// files: a crash or an error there keeps the old configuration.
public enum ConfigurationPreflight {
    /// The longest a check may take.
    static let timeoutMilliseconds: Int64 = 10_000

    /// Runs this executable with `arguments` plus `--internal-parse-only`; throws the child's
    /// one-line error, or says it crashed or hung.
    public static func check(arguments: [String]) throws(FivedCoreError) {
        let errPipe: (read: Descriptor, write: Descriptor)
        do {
            errPipe = try Syscall.pipe(nonBlocking: false)
        } catch {
            throw FivedCoreError(.configUnreadable, "reload: cannot check the configuration: \(error)")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, errPipe.write.rawValue, 2)
        _ = fived_spawn_addclosefrom(&actions, 3)
        var attr = ChildAttributes(newSession: false)
        defer { attr.destroy() }

        // Parse only: the running daemon (maybe `nobody` by now) cannot and need
        // not check host keys or accounts; the spawner checks the accounts.
        let argv = ["fived"] + arguments.filter { $0 != "--check" && $0 != "-t" && $0 != "--internal-spawner" } + ["--internal-parse-only"]
        let cArgv = argv.map { strdup($0) } + [nil]
        defer { cArgv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attr.value, cArgv, environ)
        errPipe.write.close()
        guard rc == 0 else {
            throw FivedCoreError(.configUnreadable, "reload: cannot check the configuration: \(String(cString: strerror(rc)))")
        }
        // Read the child's stderr (bounded) until EOF or the deadline.
        var text: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        let deadline = MonotonicClock.now + timeoutMilliseconds
        while MonotonicClock.now < deadline {
            var pfd = pollfd(fd: errPipe.read.rawValue, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, Int32(max(1, deadline - MonotonicClock.now))) <= 0 { continue }
            let n = read(errPipe.read.rawValue, &buf, buf.count)
            if n <= 0 { break }
            if text.count < 16384 { text += buf[0..<n] }
        }
        // stderr closes as the child exits; its exit status follows a moment later.
        var status: Int32 = 0
        var reaped = waitpid(pid, &status, WNOHANG) == pid
        while !reaped && MonotonicClock.now < deadline {
            usleep(2_000)
            reaped = waitpid(pid, &status, WNOHANG) == pid
        }
        if !reaped {
            _ = kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            throw FivedCoreError(.configUnreadable, "reload: checking the configuration took over 10 s; keeping the old one")
        }
        let low = status & 0x7f
        if low != 0 {
            throw FivedCoreError(.configSyntax, "reload: reading the configuration crashed the checker (signal \(low)); keeping the old one")
        }
        guard (status >> 8) & 0xff == 0 else {
            let line = String(decoding: text, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "the configuration check failed"
            throw FivedCoreError(.configInvalidValue, line.hasPrefix("fived: ") ? String(line.dropFirst(7)) : line)
        }
    }
}

import CSpawn
import FivedCore
import FivedSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One run of `authorized_keys_command` for a presented key, as sshd's
/// AuthorizedKeysCommand (sshd_config(5); OpenSSH auth2-pubkey.c,
/// user_key_command_allowed2): the spawner starts it as
/// `authorized_keys_command_user`, and a thread of its own (never a worker's
/// event loop) reads its standard output, at most `outputLimit` bytes, until
/// EOF and its exit, within `timeoutMilliseconds`. Fails closed: a command that
/// cannot start, exits other than 0, is killed by a signal, times out, or
/// prints too much yields a reason and no keys; on a timeout or too much
/// output the spawner kills it (SIGHUP, SIGKILL 2 s later).
enum AuthorizedKeysCommandRun {
    /// sshd has no limit of its own; fived bounds every wait (5 s) and buffer (1 MiB).
    static let timeoutMilliseconds: Int64 = 5000
    static let outputLimit = 1 << 20

    /// What came of a run: the output (exit status 0), or why there is none.
    typealias Outcome = Result<[UInt8], Failure>

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Starts the command for `user` and `key`; `completion` is called once,
    /// on a thread of its own or the spawner link's reader.
    static func start(
        spawner: SpawnerLink, user: String, key: PublicKeyBlob, timeoutMilliseconds: Int64 = timeoutMilliseconds,
        outputLimit: Int = outputLimit, completion: @escaping @Sendable (Outcome) -> Void
    ) {
        let deadline = MonotonicClock.now + timeoutMilliseconds
        let exit = ExitStatus()
        spawner.runCommand(
            user: user, key: key,
            started: { result in
                switch result {
                case .failure(let failure):
                    completion(.failure(Failure(description: "authorized_keys_command did not start: \(failure)")))
                case .success(let (child, output)):
                    let reader = Thread {
                        _ = fived_name_thread("fived-akc")
                        let outcome = collect(
                            output, child: child, exit: exit, deadline: deadline, seconds: Double(timeoutMilliseconds) / 1000,
                            limit: outputLimit, spawner: spawner)
                        output.close()
                        completion(outcome)
                    }
                    reader.start()
                }
            },
            exited: { status in exit.set(status) })
    }

    /// Reads `output` to EOF (bounded), then waits for the exit status; both by `deadline`.
    private static func collect(
        _ output: Descriptor, child: SpawnedChild, exit: ExitStatus, deadline: Int64, seconds: Double, limit: Int, spawner: SpawnerLink
    ) -> Outcome {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let left = deadline - MonotonicClock.now
            guard left > 0 else {
                spawner.retire(child)
                return .failure(Failure(description: "authorized_keys_command timed out after \(seconds) s"))
            }
            var fds = [pollfd(fd: output.rawValue, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 1, Int32(clamping: left))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(output.rawValue, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 { break }
            collected += buffer[..<n]
            if collected.count > limit {
                spawner.retire(child)
                return .failure(Failure(description: "authorized_keys_command printed more than \(limit) bytes"))
            }
        }
        guard let status = exit.wait(until: deadline) else {
            spawner.retire(child)
            return .failure(Failure(description: "authorized_keys_command timed out after \(seconds) s"))
        }
        if status & 0x7F != 0 {
            return .failure(Failure(description: "authorized_keys_command was killed by signal \(status & 0x7F)"))
        }
        let code = (status >> 8) & 0xFF
        guard code == 0 else { return .failure(Failure(description: "authorized_keys_command exited with status \(code)")) }
        return .success(collected)
    }

    /// The command's wait status, set by the spawner link's reader, awaited by the output reader.
    private final class ExitStatus: @unchecked Sendable {
        private let condition = NSCondition()
        private var status: Int32?

        func set(_ value: Int32) {
            condition.lock()
            status = value
            condition.broadcast()
            condition.unlock()
        }

        /// The status, or nil when `deadline` (monotonic ms) passes first.
        func wait(until deadline: Int64) -> Int32? {
            condition.lock()
            defer { condition.unlock() }
            while status == nil {
                let left = deadline - MonotonicClock.now
                if left <= 0 { return nil }
                _ = condition.wait(until: Date().addingTimeInterval(Double(left) / 1000))
            }
            return status
        }
    }
}

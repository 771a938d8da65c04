#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A stock `ssh-agent -D -a SOCKET`, owned by the test (not forked away), holding keys
/// added with the stock `ssh-add`.
final class SSHAgent: Sendable {
    let socketPath: String
    let process: ChildProcess
    private let directory: TestDirectory

    private init(socketPath: String, process: ChildProcess, directory: TestDirectory) {
        self.socketPath = socketPath
        self.process = process
        self.directory = directory
    }

    /// Starts an agent listening at `agent.sock` in `directory`.
    static func start(in directory: TestDirectory) async throws -> SSHAgent {
        let socketPath = directory.file("agent.sock")
        let process = try ChildProcess.spawn(
            try Tools.path("ssh-agent"), ["-D", "-a", socketPath],
            environment: Tools.environment(home: directory.path), outputPrefix: directory.file("ssh-agent"))
        let deadline = ContinuousClock.now + .seconds(10)
        while access(socketPath, F_OK) != 0 {
            if let ended = process.poll() { throw HarnessError("ssh-agent ended (\(ended)): \(process.stderr)") }
            guard ContinuousClock.now < deadline else {
                await process.killGroup()
                throw HarnessError("ssh-agent made no socket at \(socketPath)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return SSHAgent(socketPath: socketPath, process: process, directory: directory)
    }

    /// `ssh-add KEY`.
    func add(_ key: ClientKey) async throws {
        let added = try await runProcess(
            try Tools.path("ssh-add"), [key.privatePath],
            environment: Tools.environment(home: directory.path, extra: ["SSH_AUTH_SOCK": socketPath]),
            scratch: directory.path)
        guard added.exitStatus == 0 else { throw HarnessError("ssh-add failed: \(added)") }
    }

    /// The fingerprints `ssh-add -l` lists.
    func fingerprints() async throws -> [String] {
        let listed = try await runProcess(
            try Tools.path("ssh-add"), ["-l", "-E", "sha256"],
            environment: Tools.environment(home: directory.path, extra: ["SSH_AUTH_SOCK": socketPath]),
            scratch: directory.path)
        return listed.stdoutText.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first(where: { $0.hasPrefix("SHA256:") }).map(String.init)
        }
    }

    /// Stops the agent.
    func stop() async {
        process.signal(SIGTERM)
        if await process.wait(timeout: .seconds(5)) == nil { await process.killGroup() }
    }
}

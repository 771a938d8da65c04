#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A real OpenSSH sshd to compare fived with: one `sshd -i` (inetd mode) per
/// connection, started by the test on a 127.0.0.1 listener with a kernel-chosen
/// port, so no port is chosen before it is bound and the connection is a real TCP
/// socket (sshd sees the client's address, as `from=` needs). Its own config in the
/// test directory; root only (sshd's privilege separation).
final class InetdSSHD: Sendable {
    /// /usr/sbin/sshd, or nil when openssh-server is not installed.
    static let path = program("/usr/sbin/sshd")

    let port: UInt16
    let configPath: String
    private let listener: Int32
    private let children = Mutex<[ChildProcess]>([])
    private let stopped = Atomic<Bool>(false)
    private let directory: TestDirectory

    /// Starts listening; each connection gets `sshd -i -e -f CONFIG` with the
    /// socket as stdin and stdout, its log in the test directory. `authorizedKeys`
    /// is sshd's AuthorizedKeysFile; `environment` is added to each sshd's.
    init(directory: TestDirectory, authorizedKeys: String, environment extra: [String: String] = [:]) async throws {
        guard let sshd = Self.path else { throw HarnessError("sshd is not installed (apt-get install openssh-server)") }
        self.directory = directory
        let hostKey = directory.file("sshd_host_ed25519_key")
        let made = try await runProcess(
            try Tools.path("ssh-keygen"), ["-q", "-t", "ed25519", "-N", "", "-f", hostKey],
            environment: Tools.environment(home: directory.path), scratch: directory.path)
        guard made.exitStatus == 0 else { throw HarnessError("ssh-keygen for sshd's host key: \(made)") }
        configPath = try directory.write(
            "sshd_config",
            """
            HostKey \(hostKey)
            AuthorizedKeysFile \(authorizedKeys)
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            UseDNS no
            PidFile none
            LogLevel VERBOSE

            """)
        mkdir("/run/sshd", 0o755)  // the privilege separation directory
        (listener, port) = try Sockets.listenTCP()
        let environment = Tools.environment(home: directory.path, extra: extra)
        let arguments = ["-i", "-e", "-f", configPath]
        Sockets.acceptEach(listener, while: { [self] in !stopped.load(ordering: .relaxed) }) { [self] fd in
            defer { close(fd) }
            let name = "sshd-\(UInt32.random(in: 0...UInt32.max))"
            guard
                let child = try? ChildProcess.spawn(
                    sshd, arguments, environment: environment, stdin: .socket(fd), outputPrefix: self.directory.file(name))
            else { return }
            children.withLock { $0.append(child) }
        }
    }

    /// Everything the sshd processes logged so far.
    var log: String { children.withLock { $0.map(\.stderr).joined() } }

    /// Stops accepting and ends every sshd still running.
    func stop() async {
        if !stopped.exchange(true, ordering: .relaxed) { shutdown(listener, Int32(SHUT_RDWR)) }
        for child in children.withLock({ $0 }) { await child.killGroup() }
    }
}

/// Whether the SSH server on 127.0.0.1:`port` accepts `key` for `user`: stock ssh
/// with `-N -v` until it says "Authenticated to" or gives up; nil when it does
/// neither within `timeout`. The answer of authentication alone: no command runs.
func keyAccepted(port: UInt16, key: ClientKey, user: String, scratch: TestDirectory, timeout: Duration = .seconds(20)) async throws -> Bool? {
    let client = try ChildProcess.spawn(
        try Tools.path("ssh"),
        [
            "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=15", "-i", key.privatePath, "-p", String(port), "-l", user,
            "-N", "-v", "127.0.0.1",
        ], environment: Tools.environment(home: scratch.path),
        outputPrefix: scratch.file("login-\(port)-\(UInt32.random(in: 0...UInt32.max))"))
    let decided = await eventually(timeout: timeout) {
        client.stderr.contains("Authenticated to") || !client.isRunning
    }
    let accepted = client.stderr.contains("Authenticated to")
    await client.killGroup()
    return decided ? accepted : nil
}

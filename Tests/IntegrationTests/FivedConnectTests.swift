import Foundation
import Testing

/// fived-connect driven as users will: the built `fived` on a free loopback
/// port, a temporary HOME with keys from ssh-keygen, ssh-agent, ssh, and the
/// shell for pipes and hashes.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct FivedConnectTests {
    @Test func stdioCarriesTenMebibytesBothWaysIntact() throws {
        try ConnectWorld.with { world in
            try world.run("head -c 10485760 /dev/urandom > big")
            let result = try world.run(
                """
                \(world.connect) 127.0.0.1 echo < big | sha256sum | cut -d' ' -f1 > got
                sha256sum < big | cut -d' ' -f1 > want
                cmp want got && cat got
                """)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.count == 65)
        }
    }

    @Test func halfCloseDeliversEverythingAndExitsZero() throws {
        try ConnectWorld.with(services: ["echo=exec:/bin/cat", "wc=exec:/usr/bin/wc -c"]) { world in
            let result = try world.run("printf 'hello' | \(world.connect) 127.0.0.1 wc")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "5")
        }
    }

    @Test func refusedServiceExitsOneWithReason() throws {
        try ConnectWorld.with { world in
            let result = try world.run("\(world.connect) 127.0.0.1 nosuch < /dev/null")
            #expect(result.status == 1)
            #expect(result.stderr.contains("refused service 'nosuch'"))
        }
    }

    @Test func listPrintsTheServices() throws {
        try ConnectWorld.with(services: ["echo=exec:/bin/cat", "other=exec:/bin/cat"]) { world in
            let result = try world.run("\(world.connect) --list 127.0.0.1")
            #expect(result.status == 0, "\(result.stderr)")
            let names = Set(result.stdout.split(separator: "\n").map(String.init))
            #expect(names.isSuperset(of: ["echo", "other"]))
        }
    }

    @Test func agentOnlyAuthentication() throws {
        try ConnectWorld.with { world in
            let sock = "/tmp/fc-agent-\(UUID().uuidString.prefix(8)).sock"
            defer { _ = try? world.run("SSH_AUTH_SOCK=\(sock) ssh-agent -k >/dev/null 2>&1; rm -f \(sock)") }
            let result = try world.run(
                """
                eval "$(ssh-agent -a \(sock) -s)" >/dev/null
                ssh-add -q .ssh/id_ed25519
                mkdir -p keep && mv .ssh/id_ed25519 .ssh/id_ed25519.pub keep/
                ls .ssh
                echo agent | \(world.connect) 127.0.0.1 echo
                status=$?
                ssh-agent -k >/dev/null
                exit $status
                """)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasSuffix("agent\n"))
            #expect(!result.stdout.contains("id_ed25519"))
        }
    }

    @Test func noKeyAtAllIsAnAuthenticationFailure() throws {
        try ConnectWorld.with { world in
            let result = try world.run(
                """
                mv .ssh/id_ed25519 elsewhere
                env -u SSH_AUTH_SOCK \(world.connect) 127.0.0.1 echo < /dev/null
                """)
            #expect(result.status == 255)
            #expect(result.stderr.contains("permission denied"))
        }
    }

    @Test func configAliasSuppliesHostPortUserAndKey() throws {
        try ConnectWorld.with { world in
            try world.run(
                """
                mkdir -p keys && mv .ssh/id_ed25519 keys/mykey
                cat > .ssh/config <<EOF
                Host box
                    HostName 127.0.0.1
                    Port \(world.port)
                    User carol
                    IdentityFile ~/keys/mykey
                    StrictHostKeyChecking accept-new
                    UserKnownHostsFile ~/kh
                Host *
                    Port 9
                EOF
                """)
            let result = try world.run("echo alias | env -u SSH_AUTH_SOCK fived-connect box echo")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "alias\n")
            #expect(try world.read("kh").contains("[127.0.0.1]:\(world.port)"))
            #expect(try world.fivedLog().contains("user=carol"))
        }
    }

    @Test func knownHostsAcceptNewThenYesAndChangedKeyRefused() throws {
        try ConnectWorld.with { world in
            let unknown = try world.run("fived-connect -p \(world.port) 127.0.0.1 echo < /dev/null")
            #expect(unknown.status == 255)
            #expect(unknown.stderr.contains("is not known"))
            #expect(unknown.stderr.contains("StrictHostKeyChecking=accept-new"))

            let first = try world.run("echo one | \(world.connect) 127.0.0.1 echo")
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout == "one\n")
            let second = try world.run("echo two | fived-connect -p \(world.port) -o StrictHostKeyChecking=yes 127.0.0.1 echo")
            #expect(second.status == 0, "\(second.stderr)")
            #expect(second.stdout == "two\n")

            // Record a different Ed25519 key for the host: the real one is refused, even with accept-new or no.
            try world.run(
                """
                ssh-keygen -q -t ed25519 -N '' -f other
                echo "[127.0.0.1]:\(world.port) $(cut -d' ' -f1,2 other.pub)" > .ssh/known_hosts
                """)
            let otherFingerprint = try world.run("ssh-keygen -lf other.pub | cut -d' ' -f2").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let serverFingerprint = try world.waitFor(in: { (try? world.fivedLog()) ?? "" }, pattern: #"host key fingerprint=(SHA256:[A-Za-z0-9+/]+)"#)
            for mode in ["yes", "accept-new", "no"] {
                let changed = try world.run("fived-connect -p \(world.port) -o StrictHostKeyChecking=\(mode) 127.0.0.1 echo < /dev/null")
                #expect(changed.status == 255)
                #expect(changed.stderr.contains("HAS CHANGED"))
                #expect(changed.stderr.contains(otherFingerprint))
                #expect(changed.stderr.contains(serverFingerprint))
            }
        }
    }

    @Test func localForwardCarriesParallelConnectionsOverOneSSHConnection() throws {
        try ConnectWorld.with { world in
            let forward = try world.start("\(world.connect) -L 127.0.0.1:0:echo 127.0.0.1")
            defer { forward.terminate() }
            let port = try world.waitFor(in: { forward.stderr() }, pattern: #"listening on 127\.0\.0\.1:([0-9]+)"#)
            let result = try world.run(
                """
                for i in $(seq 1 20); do head -c 200000 /dev/urandom > in$i; done
                for i in $(seq 1 20); do socat -t 10 - TCP:127.0.0.1:\(port) < in$i > out$i & done
                wait
                for i in $(seq 1 20); do cmp -s in$i out$i || echo "mismatch $i"; done
                echo checked
                """)
            #expect(result.stdout == "checked\n", "\(result.stderr)")
            let authenticated = try world.fivedLog().split(separator: "\n").filter { $0.contains(" authenticated ") }
            #expect(authenticated.count == 1)
        }
    }

    @Test func localForwardReconnectsWhileTheListenerStaysUp() throws {
        try ConnectWorld.with { world in
            let forward = try world.start("\(world.connect) -L 127.0.0.1:0:echo 127.0.0.1")
            defer { forward.terminate() }
            let port = try world.waitFor(in: { forward.stderr() }, pattern: #"listening on 127\.0\.0\.1:([0-9]+)"#)
            #expect(try world.run("echo before | socat -t 5 - TCP:127.0.0.1:\(port)").stdout == "before\n")
            try world.restartFived()
            _ = try world.waitFor(in: { forward.stderr() }, pattern: #"(reconnected) to"#)
            #expect(try world.run("echo after | socat -t 5 - TCP:127.0.0.1:\(port)").stdout == "after\n")
        }
    }

    @Test func remoteForwardRefusalIsReportedClearly() throws {
        try ConnectWorld.with { world in
            let result = try world.run("\(world.connect) -R laptopweb:127.0.0.1:9 127.0.0.1")
            #expect(result.status == 1)
            #expect(result.stderr.contains("refused to publish 'laptopweb'"))
            #expect(result.stderr.contains("permitlisten"))
        }
    }

    @Test func remoteForwardPublishesAndStockSSHReachesIt() throws {
        try ConnectWorld.with { world in
            // authorized_keys is read on every authentication: grant publishing now.
            _ = try world.run(#"sed -i 's/^/permitlisten="laptopweb:*" /' authorized_keys"#)
            let localPort = try ConnectWorld.freePort()
            let echo = try world.start("socat TCP-LISTEN:\(localPort),bind=127.0.0.1,reuseaddr,fork EXEC:/bin/cat")
            defer { echo.terminate() }
            _ = try world.run("for i in $(seq 100); do socat -u /dev/null TCP:127.0.0.1:\(localPort) 2>/dev/null && break; sleep 0.05; done")
            let publisher = try world.start("\(world.connect) -R laptopweb:127.0.0.1:\(localPort) 127.0.0.1")
            defer { publisher.terminate() }
            _ = try world.waitFor(in: { publisher.stderr() }, pattern: #"(published) 'laptopweb'"#)
            let result = try world.run(
                """
                head -c 4194304 /dev/urandom > in
                ssh -F /dev/null -p \(world.port) -o UserKnownHostsFile=known_hosts_stock -o StrictHostKeyChecking=no \\
                    -o BatchMode=yes -o IdentitiesOnly=yes -i .ssh/id_ed25519 -W laptopweb:1 127.0.0.1 < in > out
                cmp in out && echo intact
                """)
            #expect(result.stdout == "intact\n", "\(result.stderr)\npublisher: \(publisher.stderr())")
            let closed = try? world.waitFor(in: { (try? world.fivedLog()) ?? "" }, pattern: #"form=forwarded-tcpip channel=\d+ (bytes_in=4194304)"#)
            #expect(closed != nil, "\((try? world.fivedLog()) ?? "")")
        }
    }

    @Test func worksAsProxyCommand() throws {
        try ConnectWorld.with(services: ["echo=exec:/bin/cat", "sshport=tcp:127.0.0.1:PORT"]) { world in
            // ssh speaks SSH through fived-connect to fived's own port (service sshport), then asks that fived for echo.
            let result = try world.run(
                """
                echo proxied | ssh -F none -i .ssh/id_ed25519 -o UserKnownHostsFile=ssh_kh -o StrictHostKeyChecking=accept-new \
                  -o BatchMode=yes -o "ProxyCommand=fived-connect -q -p \(world.port) -o StrictHostKeyChecking=accept-new %h sshport" \
                  -W echo:1 127.0.0.1
                """)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "proxied\n")
        }
    }

    @Test func badFlagIsOneLineAndExit255() throws {
        try ConnectWorld.with { world in
            let result = try world.run("fived-connect --no-such-flag 127.0.0.1 echo")
            #expect(result.status == 255)
            #expect(result.stderr.split(separator: "\n").count == 1)
            let badForward = try world.run("fived-connect -L nonsense 127.0.0.1")
            #expect(badForward.status == 255)
            #expect(badForward.stderr.contains("-L 'nonsense'"))
        }
    }

    @Test func unreachableHostIsExit255() throws {
        try ConnectWorld.with { world in
            let result = try world.run("fived-connect -p 9 127.0.0.1 echo < /dev/null")
            #expect(result.status == 255)
            #expect(result.stderr.contains("cannot connect to 127.0.0.1 port 9"))
        }
    }
}

// MARK: - Helpers (private to this file; prefixed to stay clear of other test files)

/// Where the built executables are: next to the test bundle, or $FIVED_BIN / $FIVED_CONNECT_BIN.
private enum ConnectBinaries {
    static var directory: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    }
    static var fived: String { ProcessInfo.processInfo.environment["FIVED_BIN"] ?? "\(directory)/fived" }
    static var fivedConnect: String { ProcessInfo.processInfo.environment["FIVED_CONNECT_BIN"] ?? "\(directory)/fived-connect" }
}

private struct ConnectShellResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

private struct ConnectTestError: Error, CustomStringConvertible {
    let description: String
}

/// Starts processes with posix_spawn and reaps them with waitpid: Foundation's
/// Process.waitUntilExit can hang when called from Swift Testing's threads.
private enum ConnectSpawn {
    /// Spawns `arguments[0]` with stdin from /dev/null and stdout/stderr into files.
    static func spawn(
        _ arguments: [String], environment: [String: String], directory: String,
        stdout: String, stderr: String
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Run the script in `directory` (no addchdir without _GNU_SOURCE): cd first.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Children get a clean signal mask and default dispositions, whatever the runner's thread has.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + arguments
        let env = environment.map { "\($0.key)=\($0.value)" }
        var cArgv = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &cArgv, &cEnv)
        guard rc == 0 else { throw ConnectTestError(description: "posix_spawn: \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Waits for `pid`; returns its exit status (128+signal when killed).
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    static func isRunning(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }
}

/// A running background command with its stderr in a file.
private final class ConnectBackground {
    let pid: pid_t
    let stderrPath: String
    private var reaped = false

    init(pid: pid_t, stderrPath: String) {
        self.pid = pid
        self.stderrPath = stderrPath
    }

    func stderr() -> String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL after 3 s; or SIGKILL at once.
    func terminate(graceful: Bool = true) {
        guard !reaped else { return }
        reaped = true
        if graceful {
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(3)
            while ConnectSpawn.isRunning(pid) && Date() < deadline { usleep(20_000) }
            if !ConnectSpawn.isRunning(pid) { return }
        }
        kill(pid, SIGKILL)
        _ = ConnectSpawn.wait(pid)
    }
}

/// One temporary HOME with a key, an authorized_keys file and a running fived.
private final class ConnectWorld {
    let home: String
    let services: [String]
    private(set) var port = 0
    private var fived: ConnectBackground?
    private var fivedLogs: [String] = []

    init(services: [String] = ["echo=exec:/bin/cat"]) throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("fived-connect-\(UUID().uuidString)").path
        self.services = services
        try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try run("ssh-keygen -q -t ed25519 -N '' -C tester@connect -f .ssh/id_ed25519 && cp .ssh/id_ed25519.pub authorized_keys")
        try startFived(port: 0)
    }

    private func startFived(port requested: Int) throws {
        let logPath = "\(home)/fived-\(fivedLogs.count).log"
        fivedLogs.append(logPath)
        // A service pointing at fived's own port (PORT) needs the port before the start.
        var listenPort = requested
        if listenPort == 0 && services.contains(where: { $0.contains("PORT") }) { listenPort = try Self.freePort() }
        var arguments = ["--listen", "127.0.0.1:\(listenPort)", "--host-key", "\(home)/hk", "--authorized-keys", "\(home)/authorized_keys"]
        // Started as root, fived refuses exec services given as flags (they cannot
        // name a user): those go in a config file, as root's, explicitly.
        var config = geteuid() == 0 ? "daemon_user = \"daemon\"\n" : ""
        for service in services {
            let flag = service.replacingOccurrences(of: "PORT", with: String(listenPort))
            if geteuid() == 0, let equals = flag.firstIndex(of: "="), flag[flag.index(after: equals)...].hasPrefix("exec:") {
                let argv = flag[flag.index(after: equals)...].dropFirst("exec:".count).split(separator: " ").map { "\"\($0)\"" }
                config += "[services.\(flag[..<equals])]\nexec = [\(argv.joined(separator: ", "))]\nuser = \"root\"\n"
            } else {
                arguments += ["--service", flag]
            }
        }
        if !config.isEmpty {
            let path = "\(home)/fived.toml"
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o644)
            arguments += ["--config", path]
        }
        let background = try start(executable: ConnectBinaries.fived, arguments: arguments, stderrPath: logPath)
        fived = background
        let text = try waitFor(in: { background.stderr() }, pattern: #"listening address=127\.0\.0\.1:([0-9]+)"#)
        guard let bound = Int(text) else { throw ConnectTestError(description: "fived logged no port") }
        port = bound
    }

    /// Stops fived and starts it again on the same port and host key.
    func restartFived() throws {
        fived?.terminate(graceful: false)
        try startFived(port: port)
    }

    func stop() {
        fived?.terminate(graceful: false)
        try? FileManager.default.removeItem(atPath: home)
    }

    /// A world serving `services` for `body`, stopped after.
    static func with(services: [String] = ["echo=exec:/bin/cat"], _ body: (ConnectWorld) throws -> Void) throws {
        let world = try ConnectWorld(services: services)
        defer { world.stop() }
        try body(world)
    }

    /// fived-connect toward this fived as the tests type it: its port, and its host
    /// key accepted on first use.
    var connect: String { "fived-connect -p \(port) -o StrictHostKeyChecking=accept-new" }

    func fivedLog() throws -> String {
        try fivedLogs.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined()
    }

    func read(_ relative: String) throws -> String {
        try String(contentsOfFile: "\(home)/\(relative)", encoding: .utf8)
    }

    private var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home
        env["PATH"] = "\(URL(fileURLWithPath: ConnectBinaries.fivedConnect).deletingLastPathComponent().path):" + (env["PATH"] ?? "/usr/bin:/bin")
        env.removeValue(forKey: "SSH_AUTH_SOCK")
        return env
    }

    private func start(executable: String, arguments: [String], stderrPath: String) throws -> ConnectBackground {
        let pid = try ConnectSpawn.spawn(
            [executable] + arguments, environment: environment, directory: home,
            stdout: "/dev/null", stderr: stderrPath)
        return ConnectBackground(pid: pid, stderrPath: stderrPath)
    }

    /// Starts a shell command in the background (stderr kept for `waitFor`).
    func start(_ script: String) throws -> ConnectBackground {
        try start(executable: "/bin/sh", arguments: ["-c", "exec " + script], stderrPath: "\(home)/bg-\(UUID().uuidString.prefix(6)).err")
    }

    /// Runs a shell script in HOME with fived-connect on PATH.
    @discardableResult
    func run(_ script: String) throws -> ConnectShellResult {
        let id = UUID().uuidString.prefix(8)
        let out = "\(home)/.run-\(id).out"
        let err = "\(home)/.run-\(id).err"
        let pid = try ConnectSpawn.spawn(["/bin/sh", "-c", script], environment: environment, directory: home, stdout: out, stderr: err)
        let status = ConnectSpawn.wait(pid)
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: err)
        }
        return ConnectShellResult(
            status: status,
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// Polls `text()` for up to 10 s until `pattern` matches; returns its first capture group.
    func waitFor(in text: () -> String, pattern: String) throws -> String {
        let regex = try NSRegularExpression(pattern: pattern)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let current = text()
            if let match = regex.firstMatch(in: current, range: NSRange(current.startIndex..., in: current)),
                let range = Range(match.range(at: 1), in: current)
            {
                return String(current[range])
            }
            usleep(50_000)
        }
        throw ConnectTestError(description: "no '\(pattern)' within 10 s in: \(text())")
    }

    /// A loopback port that was free a moment ago.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw ConnectTestError(description: "no free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

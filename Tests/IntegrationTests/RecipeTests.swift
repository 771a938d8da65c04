#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

private let python = program("/usr/bin/python3", "/usr/local/bin/python3")
private let git = program("/usr/bin/git", "/usr/local/bin/git")
private let curl = program("/usr/bin/curl", "/usr/local/bin/curl")
private let sshd = program("/usr/sbin/sshd")
/// The HTTP recipes need the Python backend and curl.
private let pythonAndCurl = ConditionTrait.enabled(
    if: python != nil && curl != nil, "python3 or curl is not installed (apt-get install python3 curl)")

/// examples/recipes/whoami_http.py, listening where `listen` says (`--unix PATH` or
/// `--tcp HOST:PORT`) once it logs so.
private func startWhoami(_ listen: [String], in dir: TestDirectory, name: String) async throws -> ChildProcess {
    let server = try ChildProcess.spawn(
        try #require(python), [Examples.path("recipes/whoami_http.py")] + listen,
        environment: Tools.environment(home: dir.path), outputPrefix: dir.file(name))
    guard await eventually({ server.stderr.contains("listening ") }) else {
        server.signal(SIGKILL)
        throw HarnessError("whoami_http.py did not start: \(server.stderr)")
    }
    return server
}

/// The recipes in examples/recipes/, run as written with the real programs: git,
/// curl, sshd and the Python PROXY v2 reader. Each config is the recipe's own
/// file, with only its paths, ports and allow list pointed at the test's.
@Suite("Recipes", .timeLimit(.minutes(3)))
struct RecipeTests {
    @Test(
        "git daemon --inetd as an exec service: git clone through fived gets the same commit",
        .enabled(if: git != nil, "git is not installed (apt-get install git)"))
    func gitClone() async throws {
        let environment = try await TestEnvironment.make()
        let dir = environment.directory
        let git = try #require(git)
        let home = Tools.environment(home: dir.path)
        func run(_ arguments: [String], in cwd: String? = nil) async throws -> ProcessResult {
            let result = try await runProcess(
                git, (cwd.map { ["-C", $0] } ?? []) + ["-c", "user.name=Fived Test", "-c", "user.email=test@fived.invalid"] + arguments,
                environment: home, scratch: dir.path, timeout: .seconds(60))
            #expect(result.exitStatus == 0, "\(result)")
            return result
        }
        // A repository with one commit, served from srv/project.git.
        _ = try await run(["init", "-q", "-b", "main", dir.file("work")])
        try dir.write("work/README", "served by git daemon, through fived\n")
        _ = try await run(["add", "README"], in: dir.file("work"))
        _ = try await run(["commit", "-q", "-m", "first"], in: dir.file("work"))
        let head = try await run(["rev-parse", "HEAD"], in: dir.file("work")).stdoutText
        _ = try await run(["clone", "-q", "--bare", dir.file("work"), dir.file("srv/project.git")])

        // The recipe's git user, or nobody where there is none (as root); fived's own user otherwise.
        let serveAs = geteuid() != 0 ? nil : getpwnam("git") == nil ? "nobody" : "git"
        let gitUser = serveAs.map { #"user = "\#($0)""# } ?? ""
        if let serveAs, let account = getpwnam(serveAs) {
            // git refuses a repository owned by another user (safe.directory): the
            // served repositories belong to the account git daemon runs as.
            let uid = account.pointee.pw_uid, gid = account.pointee.pw_gid
            for path in [dir.file("srv"), dir.file("srv/project.git")]
                + (FileManager.default.subpaths(atPath: dir.file("srv/project.git")) ?? []).map({ dir.file("srv/project.git/\($0)") })
            {
                chown(path, uid, gid)
            }
        }
        let recipe = try Examples.text("recipes/git.toml", replacing: [("/srv/git", dir.file("srv")), (#"user = "git""#, gitUser)])
        try await environment.withFived(FivedOptions(services: [], extraTOML: recipe)) { fived in
            let ssh = fived.sshArguments(["-W", "git:1"], command: [], key: environment.key, user: nil).joined(separator: " ")
            let clone = try await run([
                "-c", "protocol.ext.allow=always", "clone", "-q", "ext::ssh \(ssh) %G/project.git", dir.file("clone"),
            ])
            #expect(clone.exitStatus == 0)
            let cloned = try await run(["rev-parse", "HEAD"], in: dir.file("clone")).stdoutText
            #expect(cloned == head, "the clone's HEAD is the served commit")
            #expect(try String(decoding: dir.read("clone/README"), as: UTF8.self) == "served by git daemon, through fived\n")
            let logged = await fived.waitForLog { $0.message == "channel closed" && $0["service"] == "git" }
            #expect(logged?["user"] == environment.user && logged?["form"] == "direct-tcpip", "\(String(describing: logged))")
            #expect(Int(logged?["bytes_out"] ?? "") ?? 0 > 0, "the pack came through fived")
        }
    }

    @Test("an HTTP service on a Unix socket, reached with curl through ssh -L PORT:web:1", pythonAndCurl)
    func httpOnUnixSocket() async throws {
        let environment = try await TestEnvironment.make()
        let dir = environment.directory
        let socket = dir.file("web.sock")
        let server = try await startWhoami(["--unix", socket], in: dir, name: "web")
        defer { server.signal(SIGKILL) }

        let recipe = try Examples.text("recipes/web.toml", replacing: [("/run/web/web.sock", socket)])
        try await environment.withFived(FivedOptions(services: [], extraTOML: recipe)) { fived in
            let (ssh, port) = try await fived.localForward("web", name: "ssh-L")
            defer { ssh.signal(SIGTERM) }
            for path in ["/", "/second"] {
                let got = try await runProcess(
                    try #require(curl), ["-sS", "-i", "--max-time", "20", "http://127.0.0.1:\(port)\(path)"],
                    environment: Tools.environment(home: dir.path), scratch: dir.path)
                #expect(got.exitStatus == 0, "\(got)")
                #expect(got.stdoutText.hasPrefix("HTTP/1.1 200 OK"), "\(got)")
                #expect(got.stdoutText.contains("X-Fived-User: \(environment.user)"), "\(got)")
                #expect(got.stdoutText.contains("hello \(environment.user): you came from 127.0.0.1:"), "\(got)")
                #expect(got.stdoutText.contains("with key \(environment.key.fingerprint) (\(environment.key.comment)) to service web"), "\(got)")
            }
            let closed = await eventually { fived.channelClosedLines.filter { $0["service"] == "web" }.count == 2 }
            #expect(closed, "one channel per curl connection:\n\(fived.logText)")
            let requests = server.stderr.split(separator: "\n").filter { $0.hasPrefix("request ") }
            #expect(requests.count == 2 && requests.allSatisfy { $0.contains("path=/") }, "\(server.stderr)")
        }
    }

    @Test(
        "a real sshd behind fived: ssh -o ProxyCommand='ssh -W sshd:1 ...' (or fived-connect) logs in to it",
        .enabled(if: sshd != nil && getuid() == 0, "needs /usr/sbin/sshd (apt-get install openssh-server) and root to run it"))
    func sshdBehindFived() async throws {
        let environment = try await TestEnvironment.make()
        let dir = environment.directory
        let me = String(cString: getpwuid(getuid())!.pointee.pw_name)
        // The inner login uses its own key: fived and sshd each check theirs.
        let inner = try await environment.newKey(.ed25519, name: "id_inner")
        try dir.write("inner_authorized_keys", inner.authorizedLine() + "\n", mode: 0o600)
        let hostKey = try await runProcess(
            try Tools.path("ssh-keygen"), ["-q", "-t", "ed25519", "-N", "", "-f", dir.file("sshd_host_key")],
            environment: Tools.environment(home: dir.path), scratch: dir.path)
        try #require(hostKey.exitStatus == 0, "\(hostKey)")
        let sshdPort = try Sockets.unusedPort()
        try dir.write(
            "sshd_config",
            """
            ListenAddress 127.0.0.1:\(sshdPort)
            HostKey \(dir.file("sshd_host_key"))
            AuthorizedKeysFile \(dir.file("inner_authorized_keys"))
            PidFile \(dir.file("sshd.pid"))
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            LogLevel VERBOSE

            """)
        mkdir("/run/sshd", 0o755)  // sshd's privilege separation directory
        let daemon = try ChildProcess.spawn(
            try #require(sshd), ["-D", "-e", "-f", dir.file("sshd_config")],
            environment: Tools.environment(home: dir.path), outputPrefix: dir.file("sshd"))
        defer { daemon.signal(SIGTERM) }
        let up = await eventually { daemon.stderr.contains("Server listening") || !daemon.isRunning }
        try #require(up && daemon.isRunning, "sshd did not start: \(daemon.stderr)")

        let recipe = try Examples.text(
            "recipes/sshd.toml",
            replacing: [
                ("127.0.0.1:2200", "127.0.0.1:\(sshdPort)"), ("user:admin", "user:\(environment.user)"),
            ])
        try await environment.withFived(FivedOptions(services: [], extraTOML: recipe)) { fived in
            // The recipe's ProxyCommand, with the test's isolation options added.
            let proxy = ["ssh"] + fived.sshArguments(["-W", "sshd:1"], command: [], key: environment.key, user: nil).dropLast() + ["%h"]
            /// `ssh` with the inner key to the inner sshd as `me`, through `proxy`, running `command`.
            func innerLogin(through proxy: [String], _ command: String) async throws -> ProcessResult {
                try await runProcess(
                    try Tools.path("ssh"),
                    [
                        "-F", "/dev/null", "-o", "UserKnownHostsFile=\(dir.file("inner_known_hosts"))",
                        "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                        "-i", inner.privatePath, "-o", "ProxyCommand=\(proxy.joined(separator: " "))", "-l", me, "127.0.0.1", command,
                    ], environment: Tools.environment(home: dir.path), scratch: dir.path, timeout: .seconds(60))
            }
            let login = try await innerLogin(through: proxy, "echo inner-login $(id -un) from ${SSH_CONNECTION%% *}")
            #expect(login.exitStatus == 0, "\(login)")
            #expect(login.stdoutText == "inner-login \(me) from 127.0.0.1\n", "\(login)")
            #expect(await eventually { daemon.stderr.contains("Accepted publickey for \(me) from 127.0.0.1") }, "sshd log: \(daemon.stderr)")
            let logged = await fived.waitForLog { $0.message == "channel closed" && $0["service"] == "sshd" }
            #expect(logged?["user"] == environment.user && logged?["fingerprint"] == environment.key.fingerprint, "\(String(describing: logged))")

            // The same login with fived-connect as the ProxyCommand (issue 4).
            let connect = try Binaries.locate("fived-connect")
            let connectProxy = [
                connect, "-q", "-p", String(fived.port), "-i", environment.key.privatePath,
                "-o", "UserKnownHostsFile=\(environment.knownHostsPath)", "-o", "StrictHostKeyChecking=accept-new",
                "-l", environment.user, "%h", "sshd",
            ]
            let viaConnect = try await innerLogin(through: connectProxy, "echo via-fived-connect $(id -un)")
            #expect(viaConnect.exitStatus == 0, "\(viaConnect)")
            #expect(viaConnect.stdoutText == "via-fived-connect \(me)\n", "\(viaConnect)")

            // The inner key alone does not pass fived: both doors are locked.
            let wrongOuter = ["ssh"] + fived.sshArguments(["-W", "sshd:1"], command: [], key: inner, user: nil).dropLast() + ["%h"]
            let refused = try await innerLogin(through: wrongOuter, "echo should-not-run")
            #expect(refused.exitStatus == 255 && !refused.stdoutText.contains("should-not-run"), "\(refused)")
        }
    }

    @Test("a backend that reads the PROXY v2 identity logs the caller's user, key and channel", pythonAndCurl)
    func identityLogged() async throws {
        let environment = try await TestEnvironment.make()
        let dir = environment.directory
        let backendPort = try Sockets.unusedPort()
        let server = try await startWhoami(["--tcp", "127.0.0.1:\(backendPort)"], in: dir, name: "whoami")
        defer { server.signal(SIGKILL) }

        let recipe = try Examples.text("recipes/identity.toml", replacing: [("127.0.0.1:8081", "127.0.0.1:\(backendPort)")])
        try await environment.withFived(FivedOptions(services: [], extraTOML: recipe)) { fived in
            let (ssh, port) = try await fived.localForward("whoami", name: "ssh-L")
            defer { ssh.signal(SIGTERM) }
            let got = try await runProcess(
                try #require(curl), ["-sS", "--max-time", "20", "http://127.0.0.1:\(port)/who"],
                environment: Tools.environment(home: dir.path), scratch: dir.path)
            #expect(got.exitStatus == 0 && got.stdoutText.hasPrefix("hello \(environment.user):"), "\(got)")
            let closed = await fived.waitForLog { $0.message == "channel closed" && $0["service"] == "whoami" }
            let channel = try #require(closed?["channel"], "no channel closed line:\n\(fived.logText)")
            let line = try #require(server.stderr.split(separator: "\n").first { $0.hasPrefix("request ") }.map(String.init), "\(server.stderr)")
            #expect(line.contains("user=\(environment.user) fingerprint=\(environment.key.fingerprint) comment=\(environment.key.comment)"), "\(line)")
            #expect(line.contains("client=\(closed?["client"] ?? "?") service=whoami unique_id=\(channel) "), "\(line) vs \(String(describing: closed))")

            // Straight to the backend, around fived: no header, no answer.
            let around = try await runProcess(
                try #require(curl), ["-sS", "--max-time", "10", "http://127.0.0.1:\(backendPort)/"],
                environment: Tools.environment(home: dir.path), scratch: dir.path)
            #expect(around.exitStatus != 0 && !around.stdoutText.contains("hello"), "\(around)")
            #expect(await eventually { server.stderr.contains("refused reason=") }, "\(server.stderr)")
        }
    }
}

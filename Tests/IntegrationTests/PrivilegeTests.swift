#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Least privilege (security.md, "Who runs what"): fived started as root keeps
/// root only in its spawner; the network-facing daemon runs as daemon_user with
/// no capability; exec services run as their own users, limited, and cannot read
/// what is fived's. Each test needs root (to switch users) and passes unrun
/// otherwise.
@Suite("Least privilege", .timeLimit(.minutes(4)))
struct PrivilegeTests {
    /// The capabilities no network-facing process may hold (linux/capability.h bits).
    static let forbidden: [(name: String, bit: Int)] = [
        ("CAP_CHOWN", 0), ("CAP_DAC_OVERRIDE", 1), ("CAP_DAC_READ_SEARCH", 2), ("CAP_FOWNER", 3), ("CAP_KILL", 5),
        ("CAP_SETGID", 6), ("CAP_SETUID", 7), ("CAP_SETPCAP", 8), ("CAP_NET_BIND_SERVICE", 10), ("CAP_SYS_PTRACE", 19),
        ("CAP_SYS_ADMIN", 21),
    ]

    /// `Name:` fields of /proc/PID/status.
    static func status(of pid: pid_t) -> [String: String] { status(atPath: "/proc/\(pid)/status") }

    /// The fields of a status file (a process's, or one thread's: /proc/PID/task/TID/status).
    static func status(atPath path: String) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    static func services(hostKey: String) -> [TestService] {
        var whoami = TestService.exec("whoami", "/bin/sh", "-c", "id -un; id -gn; echo \"$HOME $USER $LOGNAME\"; umask; pwd")
        whoami.extra = [#"user = "nobody""#, #"working_directory = "/tmp""#]
        var steal = TestService.exec("steal", "/bin/cat", hostKey)
        steal.extra = [#"user = "nobody""#]
        var one = TestService.exec("one", "/bin/cat")
        one.extra = [#"user = "nobody""#, "instances = 1"]
        var bomb = TestService.exec("bomb", "/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait; echo all started")
        // RLIMIT_NPROC counts every process of the user on the host (and execve
        // fails when that user already has more): an account no other test runs as.
        bomb.extra = [#"user = "games""#, "limits = { nproc = 3 }"]
        var echo = TestService.exec("echo", "/bin/cat")
        echo.extra = [#"user = "nobody""#]
        return [whoami, steal, one, bomb, echo]
    }

    /// Runs `body` against a fived started as root with `services`; does nothing
    /// when the tests do not run as root.
    static func withServices(_ body: (Fived) async throws -> Void) async throws {
        guard TestDirectory.asRoot else { return }
        let environment = try await TestEnvironment.make()
        let hostKey = environment.directory.file("host_ed25519_key")
        try await environment.withFived(FivedOptions(services: services(hostKey: hostKey)), body)
    }

    @Test("the daemon runs as daemon_user with no capability; the spawner alone keeps root")
    func daemonHoldsNothing() async throws {
        try await Self.withServices { fived in
            let dropped = try #require(await fived.waitForLog { $0.message == "privileges dropped" }, "\(fived.logText)")
            let status = Self.status(of: fived.pid)
            let daemon = try #require(getpwnam("daemon")).pointee.pw_uid
            #expect(status["Uid"]?.split(separator: "\t").allSatisfy { UInt32($0) == daemon } == true, "\(status["Uid"] ?? "")")
            #expect(status["Groups"]?.isEmpty == true, "supplementary groups: \(status["Groups"] ?? "")")
            #expect(status["NoNewPrivs"] == "1")
            for field in ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"] {
                let mask = UInt64(status[field] ?? "", radix: 16)
                for cap in Self.forbidden {
                    #expect(mask.map { $0 & (1 << UInt64(cap.bit)) == 0 } == true, "\(field) holds \(cap.name): \(status[field] ?? "")")
                }
            }
            // Every thread, not only the main one: the bounding set and
            // no_new_privs are per thread.
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(fived.pid)/task")) ?? []
            #expect(tasks.count > 2)
            for task in tasks {
                let fields = Self.status(atPath: "/proc/\(fived.pid)/task/\(task)/status")
                #expect(
                    fields["CapBnd"] == "0000000000000000" && fields["NoNewPrivs"] == "1" && fields["CapEff"] == "0000000000000000",
                    "thread \(task) (\(fields["Name"] ?? "")): CapBnd \(fields["CapBnd"] ?? "") NoNewPrivs \(fields["NoNewPrivs"] ?? "")")
            }
            // The spawner is the daemon's child and root.
            let spawner = try #require(dropped["spawner"].flatMap { pid_t($0) })
            #expect(Self.status(of: spawner)["PPid"] == String(fived.pid))
            #expect(Self.status(of: spawner)["Uid"]?.hasPrefix("0\t") == true)
        }
    }

    @Test("an exec service runs as its user, with its group, environment, working directory and umask 077")
    func serviceIdentity() async throws {
        try await Self.withServices { fived in
            let run = try await fived.ssh(command: ["whoami"])
            #expect(run.exitStatus == 0, "\(run)")
            let nobody = try #require(getpwnam("nobody")).pointee
            let group = try #require(getgrgid(nobody.pw_gid)).pointee
            let home = String(cString: nobody.pw_dir)
            let lines = run.stdoutText.split(separator: "\n").map(String.init)
            #expect(lines == ["nobody", String(cString: group.gr_name), "\(home) nobody nobody", "0077", "/tmp"], "\(run)")
        }
    }

    @Test("a service reading fived's host key is refused by the kernel, and fived keeps serving")
    func hostKeyOutOfReach() async throws {
        try await Self.withServices { fived in
            let steal = try await fived.ssh(command: ["steal"])
            #expect(steal.exitStatus == 1, "\(steal)")
            #expect(steal.stdout.isEmpty, "the host key leaked: \(steal.stdoutText.prefix(40))")
            #expect(steal.stderr.contains("Permission denied"), "\(steal)")
            let echo = try await fived.stdio("echo", Array("still here\n".utf8))
            #expect(echo.stdoutText == "still here\n", "\(echo)")
        }
    }

    @Test("instances = 1 refuses a second copy while the first runs; limits.nproc stops a fork bomb")
    func limits() async throws {
        try await Self.withServices { fived in
            // The first copy holds its channel open (stdin never ends).
            let first = try fived.spawnSSH(["-T"], command: ["one"], stdin: .pipe, name: "first-one")
            let started = await eventually {
                fived.descendants().contains { (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8)) == "cat\n" }
            }
            #expect(started, "the first copy did not start: \(fived.logText)")
            let second = try await fived.ssh(command: ["one"])
            #expect(second.exitStatus != 0, "a second copy ran: \(second)")
            #expect(
                await fived.waitForLog { $0.message == "service not started" && $0["reason"]?.contains("instances (1) reached") == true } != nil,
                "\(fived.logText)")
            let bomb = try await fived.ssh(command: ["bomb"], timeout: .seconds(30))
            #expect(!bomb.stdoutText.contains("all started"), "ten processes ran under nproc = 3: \(bomb)")
            #expect(bomb.stderr.lowercased().contains("fork"), "\(bomb)")
            await first.killGroup()
        }
    }

    @Test("requests forged on the daemon's spawner socket are refused and logged; nothing runs")
    func forgedRequests() async throws {
        try await Self.withServices { fived in
            let dropped = try #require(await fived.waitForLog { $0.message == "privileges dropped" }, "\(fived.logText)")
            let socket = try #require(dropped["spawner_socket"], "\(dropped)")
            let sent = try await Peers.run("spawner_forge.py", [String(fived.pid), socket, "echo"], in: fived.directory, timeout: .seconds(30))
            #expect(sent.stdoutText.contains("SENT 7"), "\(sent)")
            #expect(
                await eventually { fived.logLines.filter { $0.message.hasPrefix("spawner refused") || $0.message == "service not started" }.count >= 7 },
                "\(fived.logText)")
            let lines = fived.logLines
            let reasons = lines.compactMap { $0["reason"] }
            #expect(reasons.contains { $0.contains("unknown request kind 255") }, "\(reasons)")
            #expect(reasons.contains { $0.contains("/bin/sh is not a configured exec service") }, "\(reasons)")
            #expect(reasons.contains { $0.contains("LD_PRELOAD") }, "\(reasons)")
            #expect(reasons.contains { $0.contains("PATH") }, "\(reasons)")
            #expect(reasons.contains { $0.contains("terminal") }, "\(reasons)")
            #expect(reasons.contains { $0.contains("descriptors") }, "\(reasons)")
            #expect(lines.contains { $0.message == "spawner refused a signal" && $0["child"] == "424242" }, "\(fived.logText)")
            #expect(fived.descendants().isEmpty, "a forged request started something: \(fived.descendants())")
            let echo = try await fived.stdio("echo", Array("after\n".utf8))
            #expect(echo.stdoutText == "after\n", "\(echo)")
        }
    }

    @Test("after 1,000 exec channels, the daemon's descriptors and the spawner's children are back where they started")
    func nothingLeaks() async throws {
        try await Self.withServices { fived in
            _ = try await fived.stdio("echo", Array("warm\n".utf8))
            #expect(await eventually { fived.descendants().isEmpty })
            let baseline = fived.openDescriptors().count
            let run = try await Peers.run(
                "many_channels.py", [String(fived.port), fived.environment.key.privatePath, fived.environment.user, "echo", "1000", "16"],
                in: fived.directory, timeout: .seconds(150))
            #expect(run.stdoutText.contains("RESULT ok 1000\n") && !run.stdoutText.contains("failed"), "\(run)")
            #expect(await eventually { fived.openDescriptors().count <= baseline }, "descriptors: \(baseline) before, \(fived.openDescriptors())")
            #expect(await eventually { fived.descendants().isEmpty }, "still running: \(fived.descendants())")
            // The spawner holds what it held before: its socket, stdio, the signal pipe.
            if let spawner = fived.logLines.first(where: { $0.message == "privileges dropped" })?["spawner"] {
                let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(spawner)/fd")) ?? []
                #expect(fds.count <= 8, "the spawner holds \(fds.count) descriptors")
            }
        }
    }

    @Test("--check refuses an exec service without user when run as root, naming the key")
    func checkWantsUser() async throws {
        guard TestDirectory.asRoot else { return }
        let environment = try await TestEnvironment.make()
        for (extra, mustName) in [
            ("", "services.bare: an exec service needs 'user'"),
            (#"user = "no-such-user-fived""#, "services.bare.user: no user 'no-such-user-fived'"),
            (#"user = "daemon""#, "services.bare.user: 'daemon' is also daemon_user"),
        ] {
            let text = """
                listen = ["127.0.0.1:0"]
                host_keys = ["\(environment.directory.file("host_key"))"]
                authorized_keys = ["\(environment.authorizedKeysPath)"]
                daemon_user = "daemon"

                [services.bare]
                exec = ["/bin/cat"]
                \(extra)
                """
            let path = try environment.directory.write("bare.toml", text)
            let result = try await environment.runFived(["--config", path, "--check"])
            #expect(result.exitStatus == 1, "\(result)")
            #expect(nonEmptyLines(result.stderr).count == 1 && result.stderr.contains(mustName), "\(result)")
        }
    }

    @Test("a revoked_keys file daemon_user cannot read stops the start as root, naming the key; readable, fived starts")
    func ownFilesReadableAfterDrop() async throws {
        guard TestDirectory.asRoot else { return }
        let environment = try await TestEnvironment.make()
        let krl = try environment.directory.write("revoked", "", mode: 0o600)
        let text = """
            listen = ["127.0.0.1:0"]
            host_keys = ["\(environment.directory.file("host_key"))"]
            authorized_keys = ["\(environment.authorizedKeysPath)"]
            daemon_user = "daemon"
            revoked_keys = ["\(krl)"]
            """
        let path = try environment.directory.write("own-files.toml", text)
        let refused = try await environment.runFived(["--config", path])
        #expect(refused.exitStatus != 0, "\(refused)")
        #expect(
            nonEmptyLines(refused.stderr).filter { $0.hasPrefix("fived:") }.count == 1
                && refused.stderr.contains("revoked_keys: \(krl): Permission denied for daemon_user 'daemon'"), "\(refused)")
        // Readable by daemon: the same configuration starts.
        chmod(krl, 0o644)
        try await environment.withFived(FivedOptions(extraTOML: "revoked_keys = [\"\(krl)\"]")) { fived in
            let echoed = try await fived.stdio("echo", Array("ok\n".utf8))
            #expect(echoed.stdoutText == "ok\n", "\(echoed)")
        }
    }
}

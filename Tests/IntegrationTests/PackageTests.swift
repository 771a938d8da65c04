#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

private let debootstrap = program("/usr/sbin/debootstrap")
private let unshare = program("/usr/bin/unshare")
private let isRoot = getuid() == 0

/// scripts/package.sh as docs/install.md tells users to run it, and the .deb it makes
/// installed, checked, removed and purged in a fresh Debian chroot (debootstrap from
/// the machine's own apt mirror), so the machine running the tests is never touched.
///
/// Cost: the release build with the static Swift runtime (about 3 minutes on two
/// cores from nothing; seconds when its folder already holds one, which this test
/// reuses: the tests' own build folder with `-release` appended, e.g. .build-release,
/// since `swift test` holds the lock of its own folder while it runs), lintian
/// (about 40 s on the 33 MB package) and debootstrap (about 40 s).
@Suite(
    "Debian package", .serialized, .timeLimit(.minutes(30)),
    .enabled(if: isRoot, "the package test installs into a chroot: run it as root"),
    .enabled(if: debootstrap != nil && unshare != nil, "needs debootstrap and unshare (apt-get install debootstrap util-linux)"))
struct PackageTests {
    @Test("package.sh builds a lintian-clean .deb that installs, checks, removes and purges cleanly")
    func buildInstallPurge() async throws {
        let directory = try TestDirectory()
        let scratch = directory.path
        var lap = ContinuousClock.now
        var laps: [String] = []
        func took(_ step: String) {
            let now = ContinuousClock.now
            laps.append("\(step) \((now - lap).components.seconds) s")
            lap = now
        }
        defer { print("PackageTests: " + laps.joined(separator: ", ")) }

        // 1. Build the package (lintian runs inside package.sh and must find no error).
        // At the lowest CPU and I/O priority: the other suites run meanwhile, and some
        // of them time what fived does within seconds.
        let built = try await runProcess(
            "/usr/bin/nice", ["-n", "19", "/usr/bin/ionice", "-c", "3", "/bin/bash", Repository.file("scripts/package.sh")],
            // The runner's own PATH (swift) and HOME (SwiftPM's caches and mirrors).
            environment: Tools.environment(
                home: ProcessInfo.processInfo.environment["HOME"] ?? "/root",
                extra: [
                    "FIVED_SCRATCH": Repository.releaseScratch, "FIVED_PACKAGE_DIR": directory.file("out"),
                    "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
                ]),
            scratch: scratch, timeout: .seconds(1500))
        took("package.sh")
        laps += built.stderr.split(separator: "\n").filter { $0.hasPrefix("package.sh: took ") }.map { "(\($0.dropFirst("package.sh: took ".count)))" }
        #expect(built.exitStatus == 0, "\(built)")
        let deb = try #require(built.stdoutText.split(separator: "\n").last.map(String.init), "\(built)")
        #expect(deb.hasSuffix("_amd64.deb") && deb.contains("/fived_"), "\(built)")
        #expect(built.stderr.contains("package.sh: lintian"), "lintian did not run: \(built)")
        let version = try String(contentsOfFile: Repository.file("VERSION"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(deb.hasSuffix("/fived_\(version)_amd64.deb"), "the name does not carry VERSION \(version): \(deb)")

        let depends = try await field("Depends", of: deb, scratch: scratch)
        let dependencies = depends.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? "" }
        #expect(Set(dependencies) == ["adduser", "libc6", "libcurl4", "libgcc-s1", "libssh-4", "libstdc++6"], "Depends: \(depends)")

        // 2. A fresh Debian with exactly what Depends names, from the machine's own mirror.
        let root = directory.file("root")
        let mirror = try #require(AptMirror.debian(), "no Debian mirror in /etc/apt/sources.list*")
        let strapped = try await runProcess(
            "/usr/bin/nice",
            [
                "-n", "19", "/usr/bin/ionice", "-c", "3", try #require(debootstrap), "--variant=minbase", "--include=" + dependencies.joined(separator: ","),
                mirror.suite, root, mirror.uri,
            ],
            environment: Tools.environment(home: scratch), scratch: scratch, timeout: .seconds(600))
        took("debootstrap")
        try #require(strapped.exitStatus == 0, "debootstrap \(mirror.suite) \(mirror.uri): \(strapped)")
        let before = try Chroot.snapshot(root)
        let passwdBefore = try String(contentsOfFile: "\(root)/etc/passwd", encoding: .utf8)
        let groupBefore = try String(contentsOfFile: "\(root)/etc/group", encoding: .utf8)

        // 3. Install it as users do.
        let name = (deb as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: deb, toPath: "\(root)/tmp/\(name)")
        let installed = try await Chroot.run(root, "cd /tmp && apt-get install -y ./\(name)", scratch: scratch)
        try #require(installed.exitStatus == 0, "\(installed)")
        try FileManager.default.removeItem(atPath: "\(root)/tmp/\(name)")
        took("apt-get install")

        // fived --check passes on the packaged configuration.
        let checked = try await Chroot.run(root, "/usr/sbin/fived --config /etc/fived/fived.toml --check", scratch: scratch)
        #expect(checked.exitStatus == 0, "\(checked)")
        #expect(checked.stdoutText.contains("listen: 0.0.0.0:1, [::]:1"), "\(checked)")
        #expect(checked.stdoutText.contains("host keys: /var/lib/fived/ssh_host_ed25519_key"), "\(checked)")
        #expect(checked.stdoutText.contains("authorized_keys: /etc/fived/authorized_keys, %h/.ssh/authorized_keys"), "\(checked)")
        #expect(!checked.stdoutText.contains("note: authorized_keys"), "the packaged authorized_keys file is missing or unsafe: \(checked)")
        let client = try await Chroot.run(root, "/usr/bin/fived-connect --help", scratch: scratch)
        #expect(client.exitStatus == 0 && client.stdoutText.contains("fived-connect"), "\(client)")

        // The user and group, the state directory, the unit, the man pages, the conffile.
        let user = try await Chroot.run(root, "getent passwd fived && getent group fived", scratch: scratch)
        let entries = user.stdoutText.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        try #require(user.exitStatus == 0 && entries.count == 2, "\(user)")
        #expect(entries[0][5] == "/var/lib/fived" && entries[0][6] == "/usr/sbin/nologin", "\(user)")
        #expect(entries[0][3] == entries[1][2], "fived's primary group is not the fived group: \(user)")
        #expect(Int(entries[0][2]).map { $0 < 1000 } == true, "not a system user: \(user)")
        var st = stat()
        try #require(stat("\(root)/var/lib/fived", &st) == 0, "no /var/lib/fived")
        // The host key is made there by root before fived drops to the fived user.
        #expect(st.st_mode & 0o7777 == 0o700 && (st.st_mode & S_IFMT) == S_IFDIR, "mode \(String(st.st_mode & 0o7777, radix: 8))")
        #expect(st.st_uid == 0 && st.st_gid == 0, "/var/lib/fived is owned by \(st.st_uid):\(st.st_gid)")
        let unit = try String(contentsOfFile: "\(root)/lib/systemd/system/fived.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=/usr/sbin/fived --config /etc/fived/fived.toml\n"), "\(unit)")
        #expect(!unit.contains("\nUser=") && !unit.contains("/usr/local/bin"), "\(unit)")
        let packagedConfig = try String(contentsOfFile: "\(root)/etc/fived/fived.toml", encoding: .utf8)
        #expect(packagedConfig.contains("\ndaemon_user = \"fived\"\n"), "\(packagedConfig)")
        for page in ["man8/fived.8.gz", "man5/fived.toml.5.gz", "man1/fived-connect.1.gz"] {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(root)/usr/share/man/\(page)")))
            #expect(bytes.starts(with: [0x1F, 0x8B]), "\(page) is not gzipped")
        }
        for doc in ["copyright", "changelog.gz"] {
            #expect(access("\(root)/usr/share/doc/fived/\(doc)", R_OK) == 0, "no /usr/share/doc/fived/\(doc)")
        }
        let conffiles = try await Chroot.run(root, "dpkg-query -W -f='${Conffiles}' fived", scratch: scratch)
        #expect(conffiles.stdoutText.contains("/etc/fived/fived.toml "), "\(conffiles)")
        #expect(access("\(root)/etc/fived/authorized_keys", R_OK) == 0, "no /etc/fived/authorized_keys")

        // 4. remove keeps the configuration, the keys and the user...
        try "# an edit of the admin's\n".write(toFile: "\(root)/etc/fived/authorized_keys", atomically: false, encoding: .utf8)
        let removed = try await Chroot.run(root, "apt-get remove -y fived", scratch: scratch)
        #expect(removed.exitStatus == 0, "\(removed)")
        #expect(access("\(root)/usr/sbin/fived", F_OK) != 0 && access("\(root)/usr/bin/fived-connect", F_OK) != 0, "binaries left after remove")
        #expect(access("\(root)/etc/fived/fived.toml", F_OK) == 0, "remove took the conffile")
        #expect((try? String(contentsOfFile: "\(root)/etc/fived/authorized_keys", encoding: .utf8)) == "# an edit of the admin's\n")
        #expect(access("\(root)/var/lib/fived", F_OK) == 0, "remove took the state directory")
        #expect(try await Chroot.run(root, "getent passwd fived", scratch: scratch).exitStatus == 0, "remove took the user")

        // 5. ... and purge leaves nothing: the file tree, passwd and group as before the install.
        let purged = try await Chroot.run(root, "apt-get purge -y fived", scratch: scratch)
        #expect(purged.exitStatus == 0, "\(purged)")
        let status = try await Chroot.run(root, "dpkg-query -W -f='${db:Status-Status}' fived", scratch: scratch)
        #expect(status.stdoutText == "not-installed" || status.exitStatus != 0, "\(status)")
        took("checks, remove, purge")
        let after = try Chroot.snapshot(root)
        #expect(after.subtracting(before).sorted() == [], "left behind by purge")
        #expect(before.subtracting(after).sorted() == [], "removed by install and purge")
        #expect(try String(contentsOfFile: "\(root)/etc/passwd", encoding: .utf8) == passwdBefore, "/etc/passwd differs after purge")
        #expect(try String(contentsOfFile: "\(root)/etc/group", encoding: .utf8) == groupBefore, "/etc/group differs after purge")
    }

    /// A control field of a .deb, from `dpkg-deb -f`.
    private func field(_ name: String, of deb: String, scratch: String) async throws -> String {
        let shown = try await runProcess("/usr/bin/dpkg-deb", ["-f", deb, name], environment: Tools.environment(home: scratch), scratch: scratch)
        guard shown.exitStatus == 0 else { throw HarnessError("dpkg-deb -f \(deb) \(name): \(shown)") }
        return shown.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The repository this test file is in, and the build folder the tests run from.
enum Repository {
    static let root = URL(fileURLWithPath: Examples.directory).deletingLastPathComponent().path

    static func file(_ name: String) -> String { "\(root)/\(name)" }

    /// Where the package's release build goes: the tests' build folder with
    /// `-release` appended (`.build-release`), kept between runs so a later run only
    /// rebuilds what changed. Not the tests' folder itself: `swift test` holds its
    /// lock while the tests run, and a `swift build` there would wait for ever.
    static var releaseScratch: String { scratch + "-release" }

    /// The tests' own `--scratch-path` (the runner is `SCRATCH/TRIPLE/debug/...`);
    /// FIVED_SCRATCH overrides, `.build` is the fallback.
    static var scratch: String {
        if let explicit = ProcessInfo.processInfo.environment["FIVED_SCRATCH"], !explicit.isEmpty {
            return explicit.hasPrefix("/") ? explicit : file(explicit)
        }
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? "").standardizedFileURL
        while url.path != "/" {
            if url.lastPathComponent == "debug" {
                return url.deletingLastPathComponent().deletingLastPathComponent().path
            }
            url = url.deletingLastPathComponent()
        }
        return file(".build")
    }
}

/// The machine's Debian mirror and release, from /etc/apt/sources.list*, for debootstrap.
struct AptMirror {
    var uri: String
    var suite: String

    /// The first `deb` source of the running release's main suite (not -updates, not -security).
    static func debian() -> AptMirror? {
        let release = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("VERSION_CODENAME=") }
            .map { String($0.dropFirst("VERSION_CODENAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        guard let release, !release.isEmpty else { return nil }
        let directory = "/etc/apt/sources.list.d"
        let files = ["/etc/apt/sources.list"] + ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted().map { "\(directory)/\($0)" }
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            if file.hasSuffix(".sources") {
                // deb822 stanzas: Types, URIs, Suites, ...
                for stanza in text.components(separatedBy: "\n\n") {
                    var fields: [String: [String]] = [:]
                    for line in stanza.split(separator: "\n") where !line.hasPrefix("#") {
                        guard let colon = line.firstIndex(of: ":") else { continue }
                        fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].split(separator: " ").map(String.init)
                    }
                    if fields["types"]?.contains("deb") == true, fields["suites"]?.contains(release) == true,
                        let uri = fields["uris"]?.first, fields["enabled"]?.first != "no"
                    {
                        return AptMirror(uri: uri, suite: release)
                    }
                }
            } else if file.hasSuffix(".list") {
                for line in text.split(separator: "\n") {
                    var words = line.split(separator: " ").map(String.init)
                    guard words.first == "deb" else { continue }
                    words.removeFirst()
                    if words.first?.hasPrefix("[") == true { words.removeFirst(while: { !$0.hasSuffix("]") }); words.removeFirst() }
                    if words.count >= 2, words[1] == release { return AptMirror(uri: words[0], suite: release) }
                }
            }
        }
        return nil
    }
}

extension Array {
    fileprivate mutating func removeFirst(while predicate: (Element) -> Bool) {
        while let first, predicate(first) { removeFirst() }
    }
}

/// Commands inside a debootstrapped tree.
enum Chroot {
    /// Runs `script` with /bin/sh in the chroot at `root`, with /proc mounted in a
    /// private mount namespace of its own (so the mount goes when the command ends):
    /// apt needs it, and so does a Swift program with its runtime linked in, which
    /// reads its arguments from /proc/self/cmdline.
    static func run(_ root: String, _ script: String, scratch: String) async throws -> ProcessResult {
        try await runProcess(
            try #require(unshare),
            [
                "--mount", "--propagation", "private", "/bin/sh", "-c",
                "mount -t proc proc \"$1/proc\" && exec chroot \"$1\" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C DEBIAN_FRONTEND=noninteractive /bin/sh -c \"$2\"",
                "chroot", root, script,
            ],
            environment: Tools.environment(home: scratch), scratch: scratch, timeout: .seconds(300))
    }

    /// Every path in the tree, but those that apt, dpkg and the account tools change
    /// as a matter of course (their databases, logs, caches and backups) and /tmp.
    static func snapshot(_ root: String) throws -> Set<String> {
        let ignored = ["proc/", "dev/", "run/", "tmp/", "var/log/", "var/cache/", "var/lib/apt/", "var/lib/dpkg/"]
        let backups: Set<String> = ["etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-", "etc/subuid-", "etc/subgid-"]
        guard let all = FileManager.default.enumerator(atPath: root) else { throw HarnessError("cannot list \(root)") }
        var paths: Set<String> = []
        while let path = all.nextObject() as? String {
            if ignored.contains(where: { path.hasPrefix($0) }) || backups.contains(path) { continue }
            paths.insert(path)
        }
        return paths
    }
}

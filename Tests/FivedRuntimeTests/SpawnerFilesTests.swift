#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing

import CSpawn
import FivedSystem
@testable import FivedServer

/// Which authorized_keys files the root spawner opens as the user (sshd's
/// temporarily_use_uid) rather than as root: decided from the path as written,
/// so a link the user planted never makes root open what the user could not.
@Suite("Spawner: whose file")
struct SpawnerFilesTests {
    static func account(uid: uid_t, home: String) -> Account {
        Account(name: "u\(uid)", uid: uid, gid: uid, groups: [uid], home: home, shell: "/bin/sh")
    }

    @Test("a path inside the home as written is the user's, wherever a link in it points")
    func insideHome() {
        let alice = Self.account(uid: 4242, home: "/home/alice")
        #expect(Spawner.belongs("/home/alice/.ssh/authorized_keys", to: alice))
        #expect(Spawner.belongs("/home/alice/", to: alice) || Spawner.belongs("/home/alice", to: alice))
        #expect(!Spawner.belongs("/home/alicex/.ssh/authorized_keys", to: alice))
        // root's own files are never "a user's" (root opens them as root anyway).
        #expect(!Spawner.belongs("/root/.ssh/authorized_keys", to: Self.account(uid: 0, home: "/root")))
    }

    @Test(
        "a link owned by the user anywhere on the path makes it the user's; fived's own files are root's",
        .enabled(if: geteuid() == 0, "needs root to give a link to another user"))
    func plantedLink() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fived-belongs-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let secret = directory + "/rootonly"
        try FileManager.default.createDirectory(atPath: secret, withIntermediateDirectories: true)
        let link = directory + "/keys"
        #expect(symlink(secret, link) == 0)
        #expect(lchown(link, 4242, 4242) == 0)
        let mallory = Self.account(uid: 4242, home: "/nonexistent")
        #expect(Spawner.belongs(link + "/authorized_keys", to: mallory))
        #expect(!Spawner.belongs(secret + "/authorized_keys", to: mallory))
        #expect(!Spawner.belongs("/etc/fived/authorized_keys", to: mallory))
    }

    @Test(
        "a user's identity taken for a file lookup is its thread's alone, and the thread returns to the spawner's",
        .enabled(if: geteuid() == 0, "needs root to take another identity"))
    func threadIdentity() {
        let own = UserFileLookups.Identity.current
        let assumed = DispatchSemaphore(value: 0)
        let looked = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let seen = Mutex((taken: false, euid: uid_t(0), egid: gid_t(0), groups: [gid_t](), restored: false))
        let status = Mutex("")
        let thread = Thread {
            let nobody: [gid_t] = [65534]
            let rc = nobody.withUnsafeBufferPointer { fived_thread_assume_identity(65534, 65534, $0.baseAddress, 1) }
            let groups = UserFileLookups.Identity.current.groups
            seen.withLock { $0 = (rc == 0, geteuid(), getegid(), groups, false) }
            status.withLock { $0 = (try? String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)) ?? "" }
            assumed.signal()
            looked.wait()
            let back = own.groups.withUnsafeBufferPointer { fived_thread_restore_identity(own.uid, own.gid, $0.baseAddress, Int32($0.count)) }
            let now = UserFileLookups.Identity.current
            let restored = back == 0 && now.uid == own.uid && now.gid == own.gid && now.groups == own.groups
            seen.withLock { $0.restored = restored }
            done.signal()
        }
        thread.start()
        #expect(assumed.wait(timeout: .now() + 5) == .success)
        let onThread = seen.withLock { $0 }
        #expect(onThread.taken)
        #expect(onThread.euid == 65534 && onThread.egid == 65534)
        #expect(onThread.groups == [65534])
        // The kernel's view of that thread: real and saved ids still root's (so it
        // can return, and the user cannot signal or trace it), no effective capability.
        let lines = status.withLock { $0 }.split(separator: "\n")
        let uids = lines.first { $0.hasPrefix("Uid:") }?.split(whereSeparator: \.isWhitespace).dropFirst().map(String.init)
        #expect(uids == ["0", "65534", "0", "65534"], "\(lines)")
        #expect(lines.contains { $0.hasPrefix("CapEff:") && $0.hasSuffix("0000000000000000") }, "\(lines)")
        // Meanwhile this thread (the spawner's main one, which forks) kept its own.
        let here = UserFileLookups.Identity.current
        #expect(here.uid == own.uid && here.gid == own.gid)
        #expect(here.groups == own.groups)
        looked.signal()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(seen.withLock { $0.restored })
    }

    @Test("only a pseudo-terminal's slave passes as a terminal")
    func terminalSlave() throws {
        let pty = try PseudoTerminal()
        let slave = try #require(pty.takeSlave())
        defer { slave.close() }
        #expect(Spawner.isTerminalSlave(slave.rawValue))
        #expect(!Spawner.isTerminalSlave(pty.master.rawValue))
        let file = open("/etc/hostname", O_RDONLY)
        defer { close(file) }
        #expect(!Spawner.isTerminalSlave(file))
        let null = open("/dev/null", O_RDWR)
        defer { close(null) }
        #expect(!Spawner.isTerminalSlave(null))
    }
}

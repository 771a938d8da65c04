#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A directory on which every access blocks, as on a dead NFS server or a hung
/// FUSE daemon: a FUSE mount (fuse(4)) whose daemon, this object, never reads
/// its `/dev/fuse` descriptor, so the kernel's first request (FUSE_INIT) is never
/// answered and every lookup under the mount waits for it. `release()` aborts
/// the connection by closing the descriptor: the waiting calls fail with
/// ENOTCONN, and the mount is detached. Needs root (CAP_SYS_ADMIN) and `/dev/fuse`.
final class HungMount {
    let path: String
    private var device: Int32

    /// Mounts over the existing directory `path`.
    init(at path: String) throws {
        self.path = path
        device = open("/dev/fuse", O_RDWR | O_CLOEXEC)
        guard device >= 0 else { throw HarnessError("open /dev/fuse: \(String(cString: strerror(errno)))") }
        let options = "fd=\(device),rootmode=40000,user_id=0,group_id=0,allow_other"
        guard mount("fived-hung", path, "fuse.fived-hung", 0, options) == 0 else {
            let reason = String(cString: strerror(errno))
            close(device)
            throw HarnessError("mount a FUSE file system on \(path): \(reason)")
        }
    }

    deinit { release() }

    /// Why FUSE file systems cannot be mounted here (not root, no /dev/fuse, or
    /// a container that refuses the mount), found by mounting one; nil when they can.
    static let unavailable: String? = {
        guard geteuid() == 0 else { return "needs root to mount a FUSE file system" }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fived-fuse-probe-\(getpid())").path
        mkdir(directory, 0o755)
        defer { rmdir(directory) }
        do {
            try HungMount(at: directory).release()
            return nil
        } catch {
            return "FUSE is not available here: \(error)"
        }
    }()

    /// True while a thread of `pid` waits for this file system to answer
    /// (its kernel wait channel is FUSE's request wait, /proc/PID/task/TID/wchan).
    static func waiting(_ pid: pid_t) -> Bool {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.contains { task in
            let channel = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/wchan", encoding: .utf8)) ?? ""
            return channel.contains("fuse") || channel == "request_wait_answer"
        }
    }

    /// Aborts the file system (blocked calls fail with ENOTCONN) and detaches it.
    func release() {
        guard device >= 0 else { return }
        close(device)
        device = -1
        _ = umount2(path, Int32(MNT_DETACH))
    }
}

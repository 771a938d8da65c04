import CSpawn
import FivedCore
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension Daemon {
    /// This program, for starting the spawner: /proc/self/exe's target, else argv[0].
    static var executablePath: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 { return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CommandLine.arguments.first ?? "fived"
    }

    /// After the listeners are bound, the host keys loaded and the spawner
    /// started: a daemon started as root becomes `daemon_user` (default
    /// `nobody`) with no supplementary groups, no capabilities (an empty
    /// bounding set) and no_new_privs, and checks it cannot become root again;
    /// one started as another user with capabilities (systemd's
    /// AmbientCapabilities) gives them up. From here on only the spawner holds
    /// privilege. Runs on the main thread before the worker threads start.
    func dropPrivileges(_ configuration: Configuration) throws(StartupError) {
        if geteuid() == 0 {
            let name = ServiceAccounts.daemonUser(configuration)
            guard let account = Account.resolve(user: name), account.uid != 0 else {
                throw StartupError(.privileges, "daemon_user: '\(name)' is not a user other than root on this host")
            }
            guard fived_become(account.uid, account.gid) == 0 else {
                throw StartupError(.privileges, "cannot become \(name) (uid \(account.uid)): \(String(cString: strerror(errno)))")
            }
            droppedRoot = true
            if let problem = Self.unreadableOwnFile(configuration, as: name) { throw StartupError(.privileges, problem) }
            logger.info(
                "privileges dropped",
                metadata: [
                    "user": "\(name)", "uid": "\(account.uid)", "spawner": "\(spawner.pid)", "spawner_socket": "\(spawner.descriptor)",
                ])
        } else if Self.holdsCapabilities {
            guard fived_drop_capabilities() == 0 else {
                throw StartupError(.privileges, "cannot give up capabilities: \(String(cString: strerror(errno)))")
            }
            logger.info("capabilities dropped", metadata: ["spawner": "\(spawner.pid)"])
        }
    }

    /// fived's own files it reads again after dropping root, at each login:
    /// `trusted_user_ca_keys`, `revoked_keys` and the fleet's
    /// `peers_authorized_keys`. Opened once as `daemon_user` (so ACLs count as
    /// the kernel counts them): one it may not open stops the start, naming
    /// the key, where it would otherwise trust no CA, revoke every key or admit
    /// no peer, found only when someone tried. A missing file is left to the
    /// login-time rules. Users' files are not checked: the spawner opens them.
    static func unreadableOwnFile(_ configuration: Configuration, as user: String) -> String? {
        let files =
            configuration.trustedUserCAKeys.map { ("trusted_user_ca_keys", $0) }
            + configuration.revokedKeys.map { ("revoked_keys", $0) }
            + (configuration.cluster.map { [("cluster.peers_authorized_keys", $0.peersAuthorizedKeys)] } ?? [])
        for (key, path) in files {
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            if fd >= 0 {
                close(fd)
                continue
            }
            let error = errno
            guard error == EACCES || error == EPERM else { continue }
            return "\(key): \(path): \(String(cString: strerror(error))) for daemon_user '\(user)', who reads it after fived drops root: "
                + "make the file readable by \(user), and every directory above it searchable"
        }
        return nil
    }

    /// True when /proc/self/status shows any effective or permitted capability.
    private static var holdsCapabilities: Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return false }
        return status.split(separator: "\n").contains { line in
            (line.hasPrefix("CapEff:") || line.hasPrefix("CapPrm:")) && line.split(separator: "\t").last.map { UInt64($0, radix: 16) != 0 } == true
        }
    }
}

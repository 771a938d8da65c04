import FivedCore
#if canImport(Glibc)
import Glibc
#endif

/// A user account from the password and group databases: what a process needs
/// to become that user as login(1) would (initgroups), and what it tells the
/// program (HOME, USER, LOGNAME, SHELL).
struct Account: Sendable, Equatable {
    var name: String
    var uid: uid_t
    var gid: gid_t
    /// Supplementary groups, as getgrouplist(3) gives them (the primary one included).
    var groups: [gid_t]
    var home: String
    var shell: String

    /// The account named `user` (a name, or a number with no name needed), with
    /// `group` (a name or number) as its primary group instead of its own when
    /// given. nil when either does not exist.
    static func resolve(user: String, group: String? = nil) -> Account? {
        guard var account = lookup(user: user) else { return nil }
        if let group {
            guard let gid = groupID(group) else { return nil }
            account.gid = gid
        }
        account.groups = supplementaryGroups(name: account.name, gid: account.gid)
        return account
    }

    /// The account an SSH user name names: by name only (getpwnam, as sshd's
    /// getpwnamallow), never by number, so that "0" or "+1000" logs in as no
    /// one's account. nil when there is none.
    static func resolve(login user: String) -> Account? {
        guard var account = lookup(user: user, byNumber: false) else { return nil }
        account.groups = supplementaryGroups(name: account.name, gid: account.gid)
        return account
    }

    /// The account running this process.
    static var current: Account? {
        lookup(user: String(geteuid())).map { account in
            var a = account
            a.groups = supplementaryGroups(name: a.name, gid: a.gid)
            return a
        }
    }

    /// A group name or number, as a gid.
    static func groupID(_ group: String) -> gid_t? {
        var entry = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 65536)
        if getgrnam_r(group, &entry, &buffer, buffer.count, &result) == 0, result != nil { return entry.gr_gid }
        if let number = UInt32(group), getgrgid_r(number, &entry, &buffer, buffer.count, &result) == 0, result != nil {
            return entry.gr_gid
        }
        return nil
    }

    private static func lookup(user: String, byNumber: Bool = true) -> Account? {
        guard !user.isEmpty, !user.utf8.contains(0) else { return nil }
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        var found = getpwnam_r(user, &pwd, &buffer, buffer.count, &result) == 0 && result != nil
        if !found, byNumber, let number = UInt32(user) {
            found = getpwuid_r(number, &pwd, &buffer, buffer.count, &result) == 0 && result != nil
        }
        guard found, let name = pwd.pw_name else { return nil }
        return Account(
            name: String(cString: name), uid: pwd.pw_uid, gid: pwd.pw_gid, groups: [],
            home: pwd.pw_dir.map { String(cString: $0) } ?? "/", shell: pwd.pw_shell.map { String(cString: $0) } ?? "/bin/sh")
    }

    private static func supplementaryGroups(name: String, gid: gid_t) -> [gid_t] {
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, gid, &groups, &count) >= 0 else { return [gid] }
        }
        return Array(groups.prefix(Int(count)))
    }
}

/// The accounts a configuration names, checked as `fived --check` and startup
/// check them (SPEC.md: exec services run as their configured `user`).
enum ServiceAccounts {
    /// The daemon's account after it drops root: `daemon_user`, else `nobody`.
    static func daemonUser(_ configuration: Configuration) -> String { configuration.daemonUser ?? "nobody" }

    /// One line per problem: an exec service without `user` while fived runs as
    /// root, a user or group that does not exist, a user other than fived's own
    /// while fived cannot switch users, a daemon_user that does not exist.
    static func problems(_ configuration: Configuration, euid: uid_t = geteuid()) -> [String] {
        var problems: [String] = []
        let privileged = euid == 0
        let me = Account.current
        let daemonAccount = privileged ? Account.resolve(user: daemonUser(configuration)) : nil
        for service in configuration.sortedServices where service.backend.isExec {
            let key = "\(service.origin): services.\(service.name.value)"
            // No `user`: fived's own, which fived started as root refuses here.
            guard let user = service.user else {
                if privileged && service.origin == ServiceConfig.flagOrigin {
                    problems.append(
                        "--service \(service.name.value): an exec service given as a flag names no user, and fived runs as root: define it in the config file with user = \"...\""
                    )
                } else if privileged {
                    problems.append("\(key): an exec service needs 'user' when fived runs as root (user = \"root\" runs it as root, explicitly)")
                }
                continue
            }
            guard let account = Account.resolve(user: user) else {
                problems.append("\(key).user: no user '\(ServiceName.printable(user))' on this host")
                continue
            }
            if let group = service.group, Account.groupID(group) == nil {
                problems.append("\(key).group: no group '\(ServiceName.printable(group))' on this host")
            }
            if !privileged, account.uid != euid {
                problems.append(
                    "\(key).user: fived runs as \(me?.name ?? String(euid)) and cannot switch to '\(ServiceName.printable(user))': start it as root, or remove 'user'"
                )
            }
            if let daemonAccount, account.uid == daemonAccount.uid {
                problems.append(
                    "\(key).user: '\(ServiceName.printable(user))' is also daemon_user: a service must not run as the user fived serves as (it could signal or trace fived); give one of them another account"
                )
            }
        }
        if let commandUser = configuration.authorizedKeysCommandUser {
            if let account = Account.resolve(user: commandUser) {
                if !privileged, account.uid != euid {
                    problems.append(
                        "authorized_keys_command_user: fived runs as \(me?.name ?? String(euid)) and cannot switch to '\(ServiceName.printable(commandUser))'")
                }
            } else {
                problems.append("authorized_keys_command_user: no user '\(ServiceName.printable(commandUser))' on this host")
            }
        }
        if privileged {
            let daemon = daemonUser(configuration)
            if let account = Account.resolve(user: daemon) {
                if account.uid == 0 { problems.append("daemon_user: '\(daemon)' is root: the network-facing daemon never runs as root") }
            } else {
                problems.append("daemon_user: no user '\(ServiceName.printable(daemon))' on this host")
            }
        }
        return problems
    }
}

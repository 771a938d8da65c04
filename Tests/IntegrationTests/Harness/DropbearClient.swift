#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Dropbear's `dbclient` in the client matrix.
///
/// - key: the test's OpenSSH key converted to Dropbear's format (`dropbearconvert
///   openssh dropbear KEY KEY.dropbear`), passed with `-i`;
/// - host key: `-y -y`, no host key check at all (a single `-y` would accept and
///   store it in ~/.ssh/known_hosts, the test directory here);
/// - port and user: `-p PORT USER@HOST`;
/// - forms: `-B NAME:1` (netcat-alike, direct-tcpip), `HOST NAME` (exec),
///   `-s HOST NAME` (subsystem: Dropbear 2022.83 has `-s`, "request a subsystem");
/// - Dropbear's own receive window (24576 bytes unless `-W` says otherwise) is
///   left as users have it: it is the smallest of the matrix.
/// dbclient passes the exit status on as its own and ignores exit-signal.
struct DropbearClient: ChannelClient {
    let fived: Fived
    /// The converted private key.
    let key: String

    init(fived: Fived) async throws {
        self.fived = fived
        key = try await fived.environment.key.converted(to: "dropbear", by: "/usr/bin/dropbearconvert", in: fived.directory) {
            ["openssh", "dropbear", $0, $1]
        }
    }

    func run(_ form: ClientForm, _ service: String, input: String?, timeout: Duration) async throws -> ClientRun {
        let destination = "\(fived.environment.user)@127.0.0.1"
        var arguments = ["-y", "-y", "-i", key, "-p", String(fived.port)]
        switch form {
        case .directTCPIP: arguments += ["-B", "\(service):1", destination]
        case .exec: arguments += [destination, service]
        case .subsystem: arguments += ["-s", destination, service]
        }
        let result = try await LowPriority.run(
            "/usr/bin/dbclient", arguments, environment: Tools.environment(home: fived.directory.path),
            stdin: input.map { .file($0) } ?? .null, scratch: fived.directory.path, timeout: timeout)
        // dbclient reports its own failures as "dbclient: Exited: REASON" or
        // "dbclient: Connection to ... exited: REASON" (a refused -B open is silent).
        let succeeded =
            result.termination != nil && !result.stderr.lowercased().contains("exited:")
            && (form.isSession || result.exitStatus == 0)
        let outcome: ChannelOutcome = form.isSession ? result.exitStatus.map { .exitStatus($0) } ?? .none : .none
        return ClientRun(client: .dbclient, form: form, service: service, process: result, outcome: outcome, clientSucceeded: succeeded)
    }
}

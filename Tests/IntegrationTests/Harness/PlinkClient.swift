#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// PuTTY's `plink` in the client matrix.
///
/// - key: the test's OpenSSH key converted to PuTTY's format (`puttygen KEY -O
///   private -o KEY.ppk`), passed with `-i`;
/// - host key: `-hostkey SHA256:...`, the fingerprint fived logged when it generated
///   its key, with `-batch` (never a prompt; nothing is stored in ~/.putty);
/// - port and user: `-P PORT -l USER`;
/// - forms: `-nc NAME:1` (direct-tcpip as the main channel, in PuTTY's "simple"
///   mode with its 2 GiB window), `HOST NAME` (exec), `-s HOST NAME` (subsystem);
/// - `-v` prints PuTTY's event log on stderr, where the exit report shows
///   ("Session sent command exit status N", "Session exited on ... signal").
struct PlinkClient: ChannelClient {
    let fived: Fived
    /// The converted private key.
    let ppk: String
    let hostKey: String

    init(fived: Fived) async throws {
        self.fived = fived
        guard let hostKey = fived.hostKeyFingerprint else {
            throw HarnessError("fived logged no 'generated host key fingerprint=': plink needs it for -hostkey\n\(fived.logText)")
        }
        self.hostKey = hostKey
        ppk = try await fived.environment.key.converted(to: "ppk", by: "/usr/bin/puttygen", in: fived.directory) {
            [$0, "-O", "private", "-o", $1]
        }
    }

    /// The plink command line before the host and command: batch, host key, port,
    /// user, key, event log on stderr, then `options`.
    func arguments(_ options: [String], user: String? = nil) -> [String] {
        ["-batch", "-v", "-hostkey", hostKey, "-P", String(fived.port), "-l", user ?? fived.environment.user, "-i", ppk]
            + options
    }

    func run(_ form: ClientForm, _ service: String, input: String?, timeout: Duration) async throws -> ClientRun {
        let tail: [String]
        switch form {
        case .directTCPIP: tail = ["-nc", "\(service):1", "127.0.0.1"]
        case .exec: tail = ["127.0.0.1", service]
        case .subsystem: tail = ["-s", "127.0.0.1", service]
        }
        let result = try await LowPriority.run(
            "/usr/bin/plink", arguments([]) + tail, environment: Tools.environment(home: fived.directory.path),
            stdin: input.map { .file($0) } ?? .null, scratch: fived.directory.path, timeout: timeout)
        let succeeded =
            result.termination != nil && !result.stderr.contains("FATAL ERROR")
            && (form.isSession || result.exitStatus == 0)
        return ClientRun(
            client: .plink, form: form, service: service, process: result,
            outcome: Self.outcome(eventLog: result.stderr), clientSucceeded: succeeded)
    }

    /// The exit report in plink's `-v` event log.
    static func outcome(eventLog: String) -> ChannelOutcome {
        for line in eventLog.split(whereSeparator: \.isNewline) {
            if let range = line.range(of: "Session sent command exit status "),
                let code = Int32(line[range.upperBound...].trimmingCharacters(in: .whitespaces))
            {
                return .exitStatus(code)
            }
            if let range = line.range(of: "Session exited on unrecognised signal \"") {
                return .exitSignal(String(line[range.upperBound...].prefix { $0 != "\"" }))
            }
            if let range = line.range(of: "Session exited on signal SIG") {
                return .exitSignal(String(line[range.upperBound...].prefix { $0.isLetter || $0.isNumber }))
            }
        }
        return .none
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// paramiko and asyncssh in the client matrix, each through a small script in
/// Tests/IntegrationTests/Clients run by Debian's /usr/bin/python3 (where
/// python3-paramiko and python3-asyncssh install; a python3 earlier on PATH, such
/// as a version manager's, would not see them).
///
/// - key: the test's OpenSSH Ed25519 key file as it is (`--key`);
/// - host key: paramiko's AutoAddPolicy, asyncssh's `known_hosts=None`;
/// - forms: paramiko `open_channel('direct-tcpip', (NAME, 1), ...)`,
///   `exec_command(NAME)`, `invoke_subsystem(NAME)`; asyncssh
///   `open_connection(NAME, 1)`, `create_process(NAME)`, `create_process(subsystem=NAME)`;
/// - the script sends `--input` then EOF while copying the channel to stdout, and
///   ends stderr with `fived-client result: ...` (see `helperOutcome`).
struct PythonClient: ChannelClient {
    enum Library: String, Sendable {
        case paramiko, asyncssh

        var client: MatrixClient { self == .paramiko ? .paramiko : .asyncssh }
    }

    let fived: Fived
    let library: Library

    /// Debian's interpreter, whose dist-packages hold the Debian modules.
    static let python = "/usr/bin/python3"

    /// The driver script for `library`.
    static func script(_ library: String) -> String { ClientPrograms.path("\(library)_client.py") }

    /// Why `module` cannot be imported by /usr/bin/python3, or nil.
    static func missing(module: String, package: String) -> String? {
        guard access(python, X_OK) == 0 else { return "\(python) is not installed (apt-get install python3 \(package))" }
        // The module's files, where Debian installs them (no interpreter started per check).
        for directory in ["/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages"] {
            if access("\(directory)/\(module)/__init__.py", R_OK) == 0 { return nil }
        }
        let versioned = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/local/lib")) ?? []
        for entry in versioned where entry.hasPrefix("python3") {
            if access("/usr/local/lib/\(entry)/dist-packages/\(module)/__init__.py", R_OK) == 0 { return nil }
        }
        return "the \(module) module is not installed for \(python) (apt-get install \(package))"
    }

    func run(_ form: ClientForm, _ service: String, input: String?, timeout: Duration) async throws -> ClientRun {
        var arguments = [
            Self.script(library.rawValue), "--port", String(fived.port), "--user", fived.environment.user,
            "--key", fived.environment.key.privatePath, "--form", form.rawValue, "--service", service,
        ]
        if let input { arguments += ["--input", input] }
        let result = try await LowPriority.run(
            Self.python, arguments, environment: Tools.environment(home: fived.directory.path),
            scratch: fived.directory.path, timeout: timeout)
        let outcome = helperOutcome(result.stderr)
        return ClientRun(
            client: library.client, form: form, service: service, process: result, outcome: outcome ?? .none,
            clientSucceeded: result.exitStatus == 0 && outcome != nil)
    }
}

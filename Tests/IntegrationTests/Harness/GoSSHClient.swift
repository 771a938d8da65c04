#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Go's golang.org/x/crypto/ssh in the client matrix, through
/// Tests/IntegrationTests/Clients/go_client/main.go, built once per test run with
/// Debian's Go and library (`GO111MODULE=off GOPATH=/usr/share/gocode`, nothing
/// fetched) into a temporary directory of its own.
///
/// - key: the test's OpenSSH Ed25519 key as it is (`ssh.ParsePrivateKey`);
/// - host key: `ssh.InsecureIgnoreHostKey()`;
/// - forms: `client.Dial("tcp", "NAME:1")` (direct-tcpip), `Session.Start(NAME)`
///   (exec), a session channel with a `subsystem` request (Session's
///   RequestSubsystem does not start the session, so its Wait cannot report);
/// - ends stderr with `fived-client result: ...` (see `helperOutcome`).
struct GoSSHClient: ChannelClient {
    let fived: Fived
    let binary: String

    init(fived: Fived) async throws {
        self.fived = fived
        binary = try await Self.binary()
    }

    static let go = "/usr/bin/go"
    static let libraryDirectory = "/usr/share/gocode/src/golang.org/x/crypto/ssh"

    /// Why the Go client cannot be built here, or nil.
    static var missing: String? {
        guard access(go, X_OK) == 0 else { return "go is not installed (apt-get install golang-go golang-golang-x-crypto-dev)" }
        guard access("\(libraryDirectory)/client.go", R_OK) == 0 else {
            return "golang.org/x/crypto/ssh is not in /usr/share/gocode (apt-get install golang-golang-x-crypto-dev)"
        }
        return nil
    }

    /// The one build of this test run, shared by every test that needs it.
    private static let build = Task { try await compile() }

    /// The built client (building it on first use).
    static func binary() async throws -> String { try await build.value }

    private static func compile() async throws -> String {
        if let missing { throw HarnessError(missing) }
        // Kept for the whole run (tests use it in parallel); a TestDirectory would be
        // removed when released, so this one is made by hand under /tmp.
        var template = Array("/tmp/fived-it-go-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw HarnessError("mkdtemp: \(errnoText())")
        }
        let directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let output = "\(directory)/go_client"
        let built = try await LowPriority.run(
            go, ["build", "-o", output, ClientPrograms.path("go_client/main.go")],
            environment: Tools.environment(
                home: directory,
                extra: [
                    "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOCACHE": "\(directory)/cache",
                    "GOFLAGS": "", "CGO_ENABLED": "0",
                ]),
            scratch: directory, timeout: .seconds(300))
        guard built.exitStatus == 0, access(output, X_OK) == 0 else {
            throw HarnessError("building Clients/go_client failed: \(built)")
        }
        try? FileManager.default.removeItem(atPath: "\(directory)/cache")
        return output
    }

    func run(_ form: ClientForm, _ service: String, input: String?, timeout: Duration) async throws -> ClientRun {
        var arguments = [
            "-port", String(fived.port), "-user", fived.environment.user, "-key", fived.environment.key.privatePath,
            "-form", form.rawValue, "-service", service,
        ]
        if let input { arguments += ["-input", input] }
        let result = try await LowPriority.run(
            binary, arguments, environment: Tools.environment(home: fived.directory.path),
            scratch: fived.directory.path, timeout: timeout)
        let outcome = helperOutcome(result.stderr)
        return ClientRun(
            client: .go, form: form, service: service, process: result, outcome: outcome ?? .none,
            clientSucceeded: result.exitStatus == 0 && outcome != nil)
    }
}

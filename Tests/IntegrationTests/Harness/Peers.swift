#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The scripted peers in Tests/IntegrationTests/Peers: Python programs (most on
/// paramiko's Transport and Message API) that do what the stock clients never
/// would, run by Debian's /usr/bin/python3, where python3-paramiko installs.
enum Peers {
    /// The Peers folder (beside this file's Harness folder).
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Peers").path

    /// The absolute path of `Peers/NAME`.
    static func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// Debian's python3 (scripts/test.sh installs python3-paramiko for it), or nil.
    static let python = program(PythonClient.python)

    /// Runs `python3 Peers/SCRIPT ARGUMENTS` to its end in `directory` (killed after
    /// `timeout`); a missing python3 fails the test here.
    static func run(
        _ script: String, _ arguments: [String], in directory: TestDirectory, environment extra: [String: String] = [:],
        stdin: StandardInput = .null, timeout: Duration = .seconds(60), sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> ProcessResult {
        let python = try #require(
            Self.python, "/usr/bin/python3 with paramiko is needed (apt-get install python3-paramiko)", sourceLocation: sourceLocation)
        return try await runProcess(
            python, [path(script)] + arguments, environment: Tools.environment(home: directory.path, extra: extra),
            stdin: stdin, scratch: directory.path, timeout: timeout)
    }

    /// What follows `RESULT ` on the first output line of `run` that starts with it,
    /// the outcome line every peer prints.
    static func result(of run: ProcessResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let line = run.stdoutText.split(separator: "\n").first { $0.hasPrefix("RESULT ") }
        return try #require(line.map { String($0.dropFirst("RESULT ".count)) }, "no RESULT line: \(run)", sourceLocation: sourceLocation)
    }
}

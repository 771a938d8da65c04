import Foundation
import Testing

/// The `channel N: open failed: ...` line stock ssh prints when a channel open is
/// refused, without the channel number (so two runs compare equal).
func openFailureLine(_ result: ProcessResult) -> String? {
    for line in result.stderr.split(separator: "\n") {
        if let range = line.range(of: "open failed") {
            return String(line[range.lowerBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
    return nil
}

/// The non-empty lines of `text`, trimmed.
func nonEmptyLines(_ text: String) -> [String] {
    text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

/// Polls `condition` until it holds or `timeout` passes; returns its last value.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(50))
    }
}

/// The hex SHA-256 that `sha256sum` prints for stdin: the first word of its output.
func sha256sumOutput(_ result: ProcessResult) -> String {
    String(result.stdoutText.split(separator: " ").first ?? "")
}

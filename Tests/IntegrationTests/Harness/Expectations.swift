import Foundation
import Testing

/// The `channel N: open failed: ...` line stock ssh prints when a channel open is
/// refused, without the channel number (so two runs compare equal).
func openFailureLine(_ result: ProcessResult) -> String? {
    for line in result.stderr.split(whereSeparator: \.isNewline) {
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

/// nil when equal; otherwise a short account of how `actual` differs from `expected`
/// (sizes and the first differing offset, never the bytes themselves).
func byteDifference(_ actual: [UInt8], _ expected: [UInt8]) -> String? {
    if actual == expected { return nil }
    let common = min(actual.count, expected.count)
    let firstDifference = (0..<common).first { actual[$0] != expected[$0] } ?? common
    return "got \(actual.count) bytes, want \(expected.count); first difference at offset \(firstDifference)"
}

/// Records an issue when `actual` is not `expected`, without dumping the bytes.
func expectBytes(
    _ actual: [UInt8], _ expected: [UInt8], _ context: @autoclosure () -> String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    if let difference = byteDifference(actual, expected) {
        Issue.record("bytes differ: \(difference). \(context())", sourceLocation: sourceLocation)
    }
}

/// stock ssh's stderr without the lines that depend on known_hosts state
/// ("Warning: Permanently added ...").
func sshDiagnostics(_ stderr: String) -> String {
    // ssh may end its lines with CRLF, which Swift holds as one Character: split on isNewline.
    stderr.split(whereSeparator: \.isNewline)
        .filter { !$0.hasPrefix("Warning: Permanently added") }
        .joined(separator: "\n")
}

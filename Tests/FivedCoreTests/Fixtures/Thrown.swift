import Testing
@testable import FivedCore

/// The error `body` throws, for a test to read its code and message; nil when it
/// throws none (or an error of another type).
func thrown(_ body: () throws -> Void) -> FivedCoreError? {
    do {
        try body()
        return nil
    } catch {
        return error as? FivedCoreError
    }
}

/// The error parsing `toml` as the config file `file` throws, or nil.
func parseError(_ toml: String, file: String = "fived.toml") -> FivedCoreError? {
    thrown { _ = try ConfigurationLoader.parse(toml: toml, file: file) }
}

/// Requires parsing `toml` (as `file`) to fail with `code` and a message that is
/// `message`, or starts with `prefix`; returns the error for further checks.
@discardableResult
func expectParseError(
    _ toml: String, file: String = "fived.toml", _ code: FivedCoreError.Code, _ message: String? = nil, prefix: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> FivedCoreError {
    let e = try #require(parseError(toml, file: file), "parsed: \(toml.debugDescription)", sourceLocation: sourceLocation)
    #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
    if let message { #expect(e.message == message, sourceLocation: sourceLocation) }
    if let prefix { #expect(e.message.hasPrefix(prefix), "\(e.message)", sourceLocation: sourceLocation) }
    return e
}

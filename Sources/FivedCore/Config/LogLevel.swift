/// How much fived logs (`log_level`, `--log-level`), from the most to the least.
public enum LogLevel: String, Sendable, CaseIterable {
    /// Everything, down to single packets and state changes.
    case trace
    /// Decisions and their reasons (which rule admitted or refused a key).
    case debug
    /// One line per connection and channel event: the default.
    case info
    /// Something is wrong but fived carries on (an authorized_keys line not honoured).
    case warning
    /// Something failed (a backend could not be reached, a listener could not bind).
    case error

    /// Parses a level name in any case (as sshd takes `LogLevel INFO`); the message
    /// names `context` and lists the accepted names.
    public init(parsing raw: String, context: String, code: FivedCoreError.Code = .configInvalidValue)
        throws(FivedCoreError)
    {
        guard let level = LogLevel(rawValue: raw.lowercased()) else {
            let names = LogLevel.allCases.map(\.rawValue).joined(separator: ", ")
            throw FivedCoreError(code, "\(context): '\(DisplayText.escaped(raw))' is not a log level: use one of \(names)")
        }
        self = level
    }
}

/// How each log line is written (`log_format`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// `TIMESTAMP LEVEL MESSAGE key=value ...`: for people (the default).
    case text
    /// One JSON object per line, every field a string: for log shippers.
    case json

    /// Parses a format name in any case; the message names `context` and lists the accepted names.
    public init(parsing raw: String, context: String) throws(FivedCoreError) {
        guard let format = LogFormat(rawValue: raw.lowercased()) else {
            let names = LogFormat.allCases.map(\.rawValue).joined(separator: ", ")
            throw FivedCoreError(.configInvalidValue, "\(context): '\(DisplayText.escaped(raw))' is not a log format: use one of \(names)")
        }
        self = format
    }
}

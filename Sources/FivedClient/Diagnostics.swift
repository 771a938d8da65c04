#if canImport(Glibc)
import Glibc
#endif

/// fived-connect's messages on stderr: one line each, prefixed with the
/// program name. `-q` keeps only errors; each `-v` adds a level of detail.
public struct Diagnostics: Sendable {
    /// 0 normal, 1..3 with -v, -1 with -q.
    public var verbosity: Int

    public init(verbosity: Int) {
        self.verbosity = verbosity
    }

    /// A failure the user must see (printed even with -q).
    public func error(_ text: String) { emit(text) }

    /// Something worth knowing that does not stop the run (silenced by -q).
    public func warning(_ text: String) { if verbosity >= 0 { emit(text) } }

    /// Progress detail, shown with -v.
    public func debug(_ text: @autoclosure () -> String) { if verbosity >= 1 { emit("debug: " + text()) } }

    private func emit(_ text: String) {
        var line = "fived-connect: " + text.replacingControlCharacters() + "\n"
        line.withUTF8 { buf in
            var offset = 0
            while offset < buf.count {
                let n = write(2, buf.baseAddress! + offset, buf.count - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                offset += n
            }
        }
    }
}

extension String {
    /// One line: newlines and other control characters from remote text become spaces.
    func replacingControlCharacters() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
    }
}

/// Why fived-connect stops, with the exit status ssh would use.
public struct ConnectFailure: Error, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Connection or authentication: exit 255.
        case connection
        /// The host key differs from the one known_hosts records: exit 255, never retried.
        case hostKeyChanged
        /// The host key is not known and StrictHostKeyChecking=yes: exit 255, never retried.
        case hostKeyUnknown
        /// A `@revoked` known_hosts line lists the host key: exit 255, never retried.
        case hostKeyRevoked
        /// The server refused the service (or a publication): exit 1.
        case refused
    }

    public let kind: Kind
    public let message: String

    static func connection(_ message: String) -> ConnectFailure { ConnectFailure(kind: .connection, message: message) }
    static func refused(_ message: String) -> ConnectFailure { ConnectFailure(kind: .refused, message: message) }

    /// True when reconnecting cannot help: the user must act (a changed, unknown or revoked host key).
    public var isFinal: Bool { kind == .hostKeyChanged || kind == .hostKeyUnknown || kind == .hostKeyRevoked }

    public var exitStatus: Int32 { kind == .refused ? 1 : 255 }
    public var description: String { message }
}

#if canImport(Glibc)
import Glibc
#endif

/// fived-connect's messages on stderr: one line each, prefixed with the
/// program name. `-q` keeps only errors; each `-v` adds a level of detail.
struct Diagnostics {
    /// 0 normal, 1..3 with -v, -1 with -q.
    var verbosity: Int

    /// A failure the user must see (printed even with -q).
    func error(_ text: String) { emit(text) }

    /// Something worth knowing that does not stop the run (silenced by -q).
    func warning(_ text: String) { if verbosity >= 0 { emit(text) } }

    /// Progress detail, shown with -v.
    func debug(_ text: @autoclosure () -> String) { if verbosity >= 1 { emit("debug: " + text()) } }

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
struct ConnectFailure: Error, CustomStringConvertible {
    enum Kind {
        /// Connection, host key or authentication: exit 255.
        case connection
        /// The server refused the service (or a publication): exit 1.
        case refused
    }

    let kind: Kind
    let message: String

    static func connection(_ message: String) -> ConnectFailure { ConnectFailure(kind: .connection, message: message) }
    static func refused(_ message: String) -> ConnectFailure { ConnectFailure(kind: .refused, message: message) }

    var exitStatus: Int32 { kind == .connection ? 255 : 1 }
    var description: String { message }
}

/// Where fived sends the bytes of a channel opened to a service.
public enum Backend: Sendable, Hashable, CustomStringConvertible {
    /// A TCP connection to `host` (no brackets; IPv6 allowed) and `port`.
    case tcp(host: String, port: UInt16)
    /// A connection to the Unix stream socket at the absolute `path`.
    case unix(path: String)
    /// A process per channel, run as inetd would (stdin and stdout on one end of a
    /// socketpair); `argv[0]` is an absolute path.
    case exec(argv: [String])

    /// True for an exec backend (a process per channel).
    public var isExec: Bool {
        if case .exec = self { return true }
        return false
    }

    /// The longest Unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
    public static let maximumUnixPathLength = 107

    /// Parses the `--service NAME=BACKEND` form of a backend: `tcp:HOST:PORT`
    /// (`tcp:[::1]:80` for IPv6), `unix:/PATH` or `exec:/PATH/PROG ARG...` (split on
    /// spaces, runs of spaces count as one). `context` names the flag or key.
    public init(flagValue raw: String, context: String) throws(FivedCoreError) {
        if raw.hasPrefix("tcp:") {
            let parsed = try HostPort.parse(
                raw.dropFirst("tcp:".count), allowPortZero: false, code: .invalidBackend, context: context,
                example: "tcp:127.0.0.1:8080 or tcp:[::1]:8080")
            self = .tcp(host: parsed.host, port: parsed.port)
        } else if raw.hasPrefix("unix:") {
            self = try .unix(path: Self.checkedSocketPath(String(raw.dropFirst("unix:".count)), context: context))
        } else if raw.hasPrefix("exec:") {
            let argv = raw.dropFirst("exec:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            self = try .exec(argv: Self.checkedArgv(argv, context: context))
        } else {
            throw FivedCoreError(
                .invalidBackend,
                "\(context): backend '\(DisplayText.escaped(raw))' is not tcp:HOST:PORT, unix:/PATH or exec:/PATH/PROG ARG...")
        }
    }

    /// Checks a Unix socket path: absolute, and short enough for `sockaddr_un`.
    static func checkedSocketPath(_ path: String, context: String) throws(FivedCoreError) -> String {
        guard path.hasPrefix("/") else {
            throw FivedCoreError(
                .invalidBackend, "\(context): unix socket path '\(DisplayText.escaped(path))' must be absolute")
        }
        guard path.utf8.count <= maximumUnixPathLength, !path.utf8.contains(0) else {
            throw FivedCoreError(
                .invalidBackend,
                "\(context): unix socket path '\(DisplayText.escaped(path))' is longer than \(maximumUnixPathLength) bytes")
        }
        return path
    }

    /// Checks an exec argv: not empty, program given by absolute path.
    static func checkedArgv(_ argv: [String], context: String) throws(FivedCoreError) -> [String] {
        guard let program = argv.first else {
            throw FivedCoreError(.invalidBackend, "\(context): exec needs a program, e.g. exec:/bin/cat")
        }
        guard program.hasPrefix("/") else {
            throw FivedCoreError(
                .invalidBackend,
                "\(context): program '\(DisplayText.escaped(program))' must be an absolute path, e.g. /usr/bin/\(DisplayText.escaped(program))")
        }
        return argv
    }

    /// The `--service` form: "tcp:127.0.0.1:8080", "tcp:[::1]:80", "unix:/run/web.sock",
    /// "exec:/bin/cat -u". An exec argument that holds a space or is empty (possible
    /// only from the config file) is shown in single quotes.
    public var description: String {
        switch self {
        case .tcp(let host, let port):
            return "tcp:" + HostPort.render(host: host, port: port)
        case .unix(let path):
            return "unix:" + path
        case .exec(let argv):
            let words = argv.map { word in
                word.isEmpty || word.contains(where: { $0 == " " || $0 == "\t" }) ? "'\(word)'" : word
            }
            return "exec:" + words.joined(separator: " ")
        }
    }
}

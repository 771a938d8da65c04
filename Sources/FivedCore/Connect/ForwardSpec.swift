/// The local end of a forward: where fived-connect listens for a `-L` forward, or
/// what a published name (`-R`) is connected to on this machine.
public enum LocalSocket: Hashable, Sendable, CustomStringConvertible {
    /// `host` is an address or name to bind or connect to; `port` 0 (a `-L` bind
    /// only) asks the kernel for a free port.
    case tcp(host: String, port: UInt16)
    /// A Unix stream socket at `path` (created there for `-L`).
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): return HostPort.render(host: host, port: port)
        case .unix(let path): return path
        }
    }
}

/// One `-L [BIND:]PORT:SERVICE` or `-L /PATH.sock:SERVICE`: every connection
/// accepted on `bind` becomes a channel to `service`.
public struct LocalForward: Hashable, Sendable, CustomStringConvertible {
    /// Address ssh binds when none is given (GatewayPorts=no): loopback only.
    public static let defaultBindHost = "127.0.0.1"

    public let bind: LocalSocket
    public let service: ServiceName

    public init(bind: LocalSocket, service: ServiceName) {
        self.bind = bind
        self.service = service
    }

    /// Parses the argument of `-L`. A trailing `:PORT` after the service (ssh's
    /// `-L 8080:web:1` habit) is accepted and ignored; `*` or an empty bind
    /// address means every address.
    public init(parsing raw: String) throws(FivedCoreError) {
        let fail = ForwardParts.failure("-L", raw, usage: "-L [BIND:]PORT:SERVICE or -L /PATH.sock:SERVICE")
        guard let lastColon = raw.lastIndex(of: ":") else { throw fail("no service name") }
        let head = raw[..<lastColon]
        if head.hasPrefix("/") || head.hasPrefix("./") || head.hasPrefix("~/") {
            let service = try ForwardParts.serviceName(raw[raw.index(after: lastColon)...], fail: fail)
            self.init(bind: .unix(path: String(head)), service: service)
            return
        }
        var parts = try ForwardParts.split(raw, fail: fail)
        // PORT:SERVICE:RPORT or BIND:PORT:SERVICE:RPORT, ssh's own spelling.
        if parts.count == 4
            || (parts.count == 3 && ForwardParts.port(parts[0]) != nil && ForwardParts.port(parts[2]) != nil
                && ForwardParts.port(parts[1]) == nil)
        {
            guard ForwardParts.port(parts[parts.count - 1]) != nil else {
                throw fail("'\(DisplayText.escaped(parts[parts.count - 1]))' is not a port")
            }
            parts.removeLast()
        }
        let bindHost: String
        let portText: String
        let serviceText: String
        switch parts.count {
        case 2:
            bindHost = Self.defaultBindHost
            portText = parts[0]
            serviceText = parts[1]
        case 3:
            // An all-digit bind address would read two ways (BIND:PORT:SERVICE or
            // ssh's PORT:SERVICE:RPORT): refuse it rather than guess.
            if ForwardParts.port(parts[0], allowZero: true) != nil {
                throw fail("'\(DisplayText.escaped(parts[0]))' looks like a port, not a bind address")
            }
            guard !parts[0].contains("/") else {
                throw fail("'\(DisplayText.escaped(parts[0]))' is not a bind address (a socket path is written /PATH.sock:SERVICE)")
            }
            bindHost = (parts[0].isEmpty || parts[0] == "*") ? "0.0.0.0" : parts[0]
            portText = parts[1]
            serviceText = parts[2]
        default:
            throw fail("expected 2 or 3 fields separated by ':'")
        }
        guard let port = ForwardParts.port(portText, allowZero: true) else {
            throw fail("'\(DisplayText.escaped(portText))' is not a port from 0 to 65535")
        }
        self.init(bind: .tcp(host: bindHost, port: port), service: try ForwardParts.serviceName(serviceText, fail: fail))
    }

    public var description: String { "\(bind) -> \(service)" }
}

/// One `-R NAME:HOST:PORT` or `-R NAME:/PATH.sock`: publish NAME on the server
/// and connect every channel opened to it to `target`.
public struct RemoteForward: Hashable, Sendable, CustomStringConvertible {
    public let name: ServiceName
    public let target: LocalSocket

    public init(name: ServiceName, target: LocalSocket) {
        self.name = name
        self.target = target
    }

    /// Parses the argument of `-R`. ssh's `NAME:1:HOST:PORT` spelling is
    /// accepted too (the port after the name is ignored, as fived ignores it).
    public init(parsing raw: String) throws(FivedCoreError) {
        let fail = ForwardParts.failure("-R", raw, usage: "-R NAME:HOST:PORT or -R NAME:/PATH.sock")
        guard let firstColon = raw.firstIndex(of: ":") else { throw fail("no local target") }
        let name = try ForwardParts.serviceName(raw[..<firstColon], fail: fail)
        var rest = String(raw[raw.index(after: firstColon)...])
        if rest.hasPrefix("/") {
            self.init(name: name, target: .unix(path: rest))
            return
        }
        var parts = try ForwardParts.split(rest, fail: fail)
        if parts.count == 3, ForwardParts.port(parts[0]) != nil {
            parts.removeFirst()  // NAME:1:HOST:PORT
            rest = parts.joined(separator: ":")
            if let path = parts.first, path.hasPrefix("/") { self.init(name: name, target: .unix(path: rest)); return }
        }
        if parts.count == 2, ForwardParts.port(parts[0]) != nil, parts[1].hasPrefix("/") {
            self.init(name: name, target: .unix(path: parts[1]))  // NAME:1:/PATH.sock
            return
        }
        guard parts.count == 2 else { throw fail("expected NAME:HOST:PORT") }
        guard !parts[0].isEmpty else { throw fail("no host before the port") }
        guard !parts[0].contains("/") else { throw fail("'\(DisplayText.escaped(parts[0]))' is not a host (a socket path is written NAME:/PATH.sock)") }
        guard let port = ForwardParts.port(parts[1]) else {
            throw fail("'\(DisplayText.escaped(parts[1]))' is not a port from 1 to 65535")
        }
        self.init(name: name, target: .tcp(host: parts[0], port: port))
    }

    public var description: String { "\(name) -> \(target)" }
}

/// The parsing the two forward forms share.
enum ForwardParts {
    /// The error for `-L` or `-R` (`flag`) with argument `raw`: why it is wrong, and `usage`.
    static func failure(_ flag: String, _ raw: String, usage: String) -> (String) -> FivedCoreError {
        let shown = DisplayText.escaped(raw)
        return { why in FivedCoreError(.invalidForwardSpec, "\(flag) '\(shown)': \(why); use \(usage)") }
    }

    /// `text` as a service name, or `fail`'s error saying it is not one.
    static func serviceName(_ text: some StringProtocol, fail: (String) -> FivedCoreError) throws(FivedCoreError) -> ServiceName {
        guard let name = ServiceName(text) else { throw fail("'\(DisplayText.escaped(text))' is not a service name") }
        return name
    }

    /// Splits on ':' outside brackets; brackets around an IPv6 address are removed.
    static func split(_ raw: String, fail: (String) -> FivedCoreError) throws(FivedCoreError) -> [String] {
        var parts: [String] = []
        var current = ""
        var inBrackets = false
        var closed = false  // a ']' just ended this field: only ':' may follow
        for ch in raw {
            switch ch {
            case "[":
                // Brackets only wrap a whole field (an IPv6 address): "[" inside one is not a host.
                guard current.isEmpty && !inBrackets && !closed else { throw fail("misplaced '['") }
                inBrackets = true
            case "]":
                guard inBrackets, !current.isEmpty else { throw fail("misplaced ']'") }
                inBrackets = false
                closed = true
            case ":" where !inBrackets:
                parts.append(current)
                current = ""
                closed = false
            default:
                guard !closed else { throw fail("text after ']'") }
                current.append(ch)
            }
        }
        if inBrackets { throw fail("'[' without ']'") }
        parts.append(current)
        return parts
    }

    /// A decimal port, 1...65535 (0 too when `allowZero`).
    static func port(_ text: String, allowZero: Bool = false) -> UInt16? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(text), value <= 65535, value >= (allowZero ? 0 : 1)
        else { return nil }
        return UInt16(value)
    }
}

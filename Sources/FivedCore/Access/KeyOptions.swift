import Foundation

/// The options field of one authorized_keys line, parsed as sshd's
/// `sshauthopt_parse` does: comma-separated, option names without case, values in
/// double quotes (`\"` escapes a quote), later flags overriding earlier ones
/// (`restrict,port-forwarding` re-enables forwarding; the reverse order does not).
///
/// fived acts on `from`, `expiry-time`, `restrict`, `[no-]port-forwarding`,
/// `permitopen`, `permitlisten`, `command`, `cert-authority`, `principals` and,
/// for security-key certificates, `[no-]touch-required` and `verify-required`;
/// the rest are kept only so that a line sshd accepts is accepted here too.
public struct KeyOptions: Sendable, Equatable {
    /// One `permitopen` or `permitlisten` entry: a host (for fived, a service
    /// name or, for permitlisten, a wildcard pattern) and a port.
    public struct Permit: Sendable, Equatable, CustomStringConvertible {
        /// The port part: a number, or `*` for any port.
        public enum Port: Sendable, Equatable {
            case any
            case number(UInt16)
        }
        /// The host part, brackets removed.
        public var host: String
        /// The port part.
        public var port: Port

        /// An entry for `host` and `port`.
        public init(host: String, port: Port) {
            self.host = host
            self.port = port
        }

        public var description: String {
            switch port {
            case .any: return "\(host):*"
            case .number(let n): return "\(host):\(n)"
            }
        }
    }

    /// `restrict` was given.
    public var restricted = false
    /// Port forwarding, which in fived is every service open other than through
    /// a forced command (sshd's default: on; `restrict` turns it off).
    public var portForwarding = true
    /// Parsed, unused by fived.
    public var agentForwarding = true
    /// Parsed, unused by fived.
    public var x11Forwarding = true
    /// Parsed, unused by fived.
    public var pty = true
    /// Parsed, unused by fived.
    public var userRC = true
    /// `no-touch-required` clears it; used for security-key certificates
    /// (`CertificateCheck`), not for plain keys.
    public var touchRequired = true
    /// `verify-required`; used for security-key certificates (`CertificateCheck`).
    public var verifyRequired = false
    /// `cert-authority`: the line's key is a CA whose user certificates are
    /// accepted (`CertificateCheck`), not a key to log in with.
    public var certAuthority = false
    /// `principals="..."`, meaningful only with `cert-authority`: the
    /// comma-separated names, one of which must be a certificate principal
    /// (instead of the SSH user name).
    public var principals: String?
    /// `command="..."`: in fived, the service every session channel is sent to.
    public var command: String?
    /// `from="..."`.
    public var from: AddressPattern?
    /// `expiry-time="..."` as seconds since the epoch; the earliest wins when repeated.
    public var expiryTime: Int64?
    /// `environment="NAME=value"`, first per name wins; unused by fived.
    public var environment: [String] = []
    /// `permitopen="HOST:PORT"`, in order.
    public var permitOpen: [Permit] = []
    /// `permitlisten="[HOST:]PORT"`, in order; a bare port has an empty host
    /// (it publishes no name in fived, where sshd would read it as any address).
    public var permitListen: [Permit] = []
    /// `tunnel="N"` or `"any"`; unused by fived.
    public var tunnel: String?

    /// sshd's limit on permitopen/permitlisten entries per line.
    public static let maximumPermits = 4096
    /// sshd's limit on environment entries per line.
    public static let maximumEnvironment = 1024

    /// Defaults: no options given.
    public init() {}

    /// Parses an options field (the text before the key type, up to the first
    /// unquoted blank). `context` (e.g. `/etc/fived/authorized_keys:3`) starts
    /// every error message; `timeZone` interprets expiry times without `Z`.
    public init(parsing field: some StringProtocol, context: String, timeZone: TimeZone = .current) throws(FivedCoreError) {
        var parser = OptionsScanner(bytes: Array(field.utf8), context: context, timeZone: timeZone)
        self = try parser.parse()
    }

    /// Parses sshd's `expiry-time` format `YYYYMMDD[HHMM[SS]]`, optionally
    /// followed by `Z` or `UTC` for UTC, else in `timeZone`'s *standard* time, as
    /// sshd computes it (misc.c `parse_absolute_time`: `mktime` of a `struct tm`
    /// zeroed, so `tm_isdst = 0`): under `TZ=America/New_York`, `20260814120000`
    /// is 12:00 EST (17:00 UTC) even in summer. Returns seconds since the epoch,
    /// or nil when malformed, not a real date, or not after 1970.
    public static func parseExpiryTime(_ raw: some StringProtocol, timeZone: TimeZone) -> Int64? {
        var bytes = Array(raw.utf8)
        var isUTC = false
        if bytes.count > 1, let last = bytes.last, last | 0x20 == UInt8(ascii: "z") {
            bytes.removeLast()
            isUTC = true
        } else if bytes.count > 3, String(decoding: bytes.suffix(3), as: UTF8.self).uppercased() == "UTC" {
            bytes.removeLast(3)
            isUTC = true
        }
        guard [8, 12, 14].contains(bytes.count), bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        func number(_ start: Int, _ length: Int) -> Int {
            bytes[start..<start + length].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        let year = number(0, 4), month = number(4, 2), day = number(6, 2)
        let hour = bytes.count >= 12 ? number(8, 2) : 0
        let minute = bytes.count >= 12 ? number(10, 2) : 0
        let second = bytes.count == 14 ? number(12, 2) : 0
        guard month >= 1, month <= 12, day >= 1, hour <= 23, minute <= 59, second <= 59 else { return nil }
        // The wall-clock reading as if it were UTC, then shifted by the zone's
        // standard offset (its offset without daylight saving) at that moment.
        let utc = TimeZone(identifier: "UTC")!
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        var components = DateComponents()
        components.year = year
        components.month = month
        components.day = 1
        guard let firstOfMonth = calendar.date(from: components),
            let days = calendar.range(of: .day, in: .month, for: firstOfMonth), day <= days.count
        else { return nil }
        components.day = day
        components.hour = hour
        components.minute = minute
        components.second = second
        guard let wallClock = calendar.date(from: components) else { return nil }
        var seconds = wallClock.timeIntervalSince1970
        if !isUTC && timeZone != utc {
            let instant = wallClock.addingTimeInterval(-Double(timeZone.secondsFromGMT(for: wallClock)))
            let standardOffset = timeZone.secondsFromGMT(for: instant) - Int(timeZone.daylightSavingTimeOffset(for: instant))
            seconds -= Double(standardOffset)
        }
        guard seconds >= 1, seconds < 9.2e18 else { return nil }
        return Int64(seconds)
    }
}

/// The byte-level scanner behind `KeyOptions(parsing:)`.
private struct OptionsScanner {
    let bytes: [UInt8]
    let context: String
    let timeZone: TimeZone
    var index = 0

    init(bytes: [UInt8], context: String, timeZone: TimeZone) {
        self.bytes = bytes
        self.context = context
        self.timeZone = timeZone
    }

    private func fail(_ code: FivedCoreError.Code, _ reason: String) -> FivedCoreError {
        FivedCoreError(code, "\(context): \(reason)")
    }

    private func fail(_ reason: String) -> FivedCoreError { fail(.authorizedKeyMalformed, reason) }

    private static let comma = UInt8(ascii: ",")
    private static let equals = UInt8(ascii: "=")
    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")

    mutating func parse() throws(FivedCoreError) -> KeyOptions {
        var options = KeyOptions()
        guard !bytes.isEmpty else { throw fail("empty options field") }
        while true {
            let nameStart = index
            while index < bytes.count, bytes[index] != Self.comma, bytes[index] != Self.equals { index += 1 }
            if index == nameStart, index < bytes.count, bytes[index] == Self.comma {
                // sshd skips empty options: ",restrict" and "restrict,,pty" are accepted.
                index += 1
                if index == bytes.count { break }
                continue
            }
            let rawName = String(decoding: bytes[nameStart..<index], as: UTF8.self)
            // Option names compare without ASCII case only, as strncasecmp does.
            let name = String(decoding: bytes[nameStart..<index].map(AddressPattern.asciiLower), as: UTF8.self)
            if index < bytes.count, bytes[index] == Self.equals {
                index += 1
                try applyValued(name: name, rawName: rawName, to: &options)
            } else {
                try applyFlag(name: name, rawName: rawName, to: &options)
            }
            if index == bytes.count { break }
            guard bytes[index] == Self.comma else {
                throw fail(.authorizedKeyUnknownOption, "unexpected text after option '\(ServiceName.printable(rawName))'")
            }
            index += 1
            // A comma before the blank that ends the field ends the options, as in
            // sshd (auth-options.c: the comma is skipped, then the blank stops the loop).
            if index == bytes.count { break }
        }
        return options
    }

    private func applyFlag(name: String, rawName: String, to o: inout KeyOptions) throws(FivedCoreError) {
        switch name {
        case "restrict":
            o.restricted = true
            o.portForwarding = false
            o.agentForwarding = false
            o.x11Forwarding = false
            o.pty = false
            o.userRC = false
            return
        case "cert-authority":
            o.certAuthority = true
            return
        default: break
        }
        let enable = !name.hasPrefix("no-")
        switch enable ? name : String(name.dropFirst(3)) {
        case "port-forwarding": o.portForwarding = enable
        case "agent-forwarding": o.agentForwarding = enable
        case "x11-forwarding": o.x11Forwarding = enable
        case "touch-required": o.touchRequired = enable
        case "verify-required": o.verifyRequired = enable
        case "pty": o.pty = enable
        case "user-rc": o.userRC = enable
        default:
            if Self.valuedNames.contains(name) {
                throw fail(.authorizedKeyMalformed, "option '\(ServiceName.printable(rawName))' needs a value in double quotes")
            }
            throw fail(
                .authorizedKeyUnknownOption,
                "unknown option '\(ServiceName.printable(rawName))': sshd does not know it, so the line is not honoured")
        }
    }

    private static let valuedNames: Set<String> = [
        "command", "principals", "from", "expiry-time", "environment", "permitopen", "permitlisten", "tunnel",
    ]

    private mutating func applyValued(name: String, rawName: String, to o: inout KeyOptions) throws(FivedCoreError) {
        guard Self.valuedNames.contains(name) else {
            throw fail(
                .authorizedKeyUnknownOption,
                "unknown option '\(ServiceName.printable(rawName))': sshd does not know it, so the line is not honoured")
        }
        let value = try dequote(option: name)
        switch name {
        case "command":
            guard o.command == nil else { throw fail("more than one command= option") }
            o.command = value
        case "principals":
            guard o.principals == nil else { throw fail("more than one principals= option") }
            o.principals = value
        case "from":
            guard o.from == nil else { throw fail("more than one from= option") }
            o.from = try AddressPattern(parsing: value, context: context)
        case "expiry-time":
            guard let t = KeyOptions.parseExpiryTime(value, timeZone: timeZone) else {
                throw fail("invalid expiry-time \"\(ServiceName.printable(value))\": use YYYYMMDD[HHMM[SS]][Z]")
            }
            o.expiryTime = min(o.expiryTime ?? t, t)
        case "environment":
            guard o.environment.count <= KeyOptions.maximumEnvironment else { throw fail("too many environment= options") }
            let parts = value.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty,
                parts[0].utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x5F })
            else {
                throw fail("invalid environment=\"\(ServiceName.printable(value))\": use NAME=value")
            }
            if !o.environment.contains(where: { $0.hasPrefix(parts[0] + "=") }) {
                o.environment.append(value)
            }
        case "permitopen":
            guard o.permitOpen.count <= KeyOptions.maximumPermits else { throw fail("too many permitopen= options") }
            o.permitOpen.append(try permit(value, option: "permitopen", bareIsPort: false))
        case "permitlisten":
            guard o.permitListen.count <= KeyOptions.maximumPermits else { throw fail("too many permitlisten= options") }
            o.permitListen.append(try permit(value, option: "permitlisten", bareIsPort: true))
        case "tunnel":
            let digits = value.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
            guard value.lowercased() == "any" || (digits && !value.isEmpty && value.utf8.count <= 10 && Int(value)! <= Int(Int32.max) - 2)
            else {
                throw fail("invalid tunnel=\"\(ServiceName.printable(value))\": use a device number or any")
            }
            o.tunnel = value
        default:
            break
        }
    }

    /// sshd's `opt_dequote`: a double-quoted value where `\"` stands for `"`
    /// (other backslashes are kept as they are).
    private mutating func dequote(option: String) throws(FivedCoreError) -> String {
        guard index < bytes.count, bytes[index] == Self.quote else {
            throw fail("\(option)= value must be in double quotes")
        }
        index += 1
        var out: [UInt8] = []
        while index < bytes.count, bytes[index] != Self.quote {
            if bytes[index] == Self.backslash, index + 1 < bytes.count, bytes[index + 1] == Self.quote {
                index += 1
            }
            out.append(bytes[index])
            index += 1
        }
        guard index < bytes.count else { throw fail("\(option)= value has no closing quote") }
        index += 1
        return String(decoding: out, as: UTF8.self)
    }

    /// sshd's permitopen/permitlisten grammar (`hpdelim2`): `HOST:PORT`,
    /// `[HOST]:PORT` or `HOST/PORT`; PORT a number from 1 to 65535 or `*`. For
    /// permitlisten a value with no colon is a port on any host.
    private func permit(_ raw: String, option: String, bareIsPort: Bool) throws(FivedCoreError) -> KeyOptions.Permit {
        var value = Array(raw.utf8)
        if bareIsPort && !value.contains(UInt8(ascii: ":")) {
            // sshd reads a bare port as "any address". In fived the host is the
            // name to publish, and a line written for sshd's -R must not let a key
            // take any name: a bare port names no host, so it publishes nothing.
            value = Array(":".utf8) + value
        }
        let host: [UInt8]
        let rest: ArraySlice<UInt8>
        if value.first == UInt8(ascii: "[") {
            guard let close = value.firstIndex(of: UInt8(ascii: "]")) else {
                throw fail("\(option)=\"\(ServiceName.printable(raw))\": unclosed '['")
            }
            host = Array(value[1..<close])
            rest = value[(close + 1)...]
            if let first = rest.first, first != UInt8(ascii: ":"), first != UInt8(ascii: "/") {
                throw fail("\(option)=\"\(ServiceName.printable(raw))\": invalid host")
            }
        } else if let delimiter = value.firstIndex(where: { $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "/") }) {
            host = Array(value[..<delimiter])
            rest = value[delimiter...]
        } else {
            host = value
            rest = []
        }
        guard host.count < 1025 else { throw fail("\(option)= host is too long") }
        guard rest.count >= 2 else {
            throw fail("\(option)=\"\(ServiceName.printable(raw))\": missing port (use HOST:PORT, PORT may be *)")
        }
        let portText = rest.dropFirst()
        let port: KeyOptions.Permit.Port
        if portText.elementsEqual([UInt8(ascii: "*")]) {
            port = .any
        } else if portText.count <= 10, portText.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let n = Int(String(decoding: portText, as: UTF8.self)), n >= 1, n <= 65535
        {
            port = .number(UInt16(n))
        } else {
            throw fail(
                "\(option)=\"\(ServiceName.printable(raw))\": invalid port (a number from 1 to 65535 or *; fived does not look up service names)")
        }
        return KeyOptions.Permit(host: String(decoding: host, as: UTF8.self), port: port)
    }
}

/// A service name as RFC 1078 (TCPMUX) and SPEC.md define it: 1 to 64 characters
/// from letters, digits, `.`, `_` and `-`, compared without case.
///
/// The stored `value` is the lower-cased canonical form; equality and hashing use it,
/// so `Echo` and `echo` are one name.
public struct ServiceName: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The canonical (lower-case) spelling.
    public let value: String

    /// The longest name accepted, in bytes (RFC 1078 sets no limit; SPEC.md does).
    public static let maximumLength = 64

    /// The reserved name that lists what the caller may open.
    public static let help = ServiceName(trusted: "help")
    /// The reserved name of the built-in status table.
    public static let status = ServiceName(trusted: "status")
    /// The reserved name of the built-in Prometheus endpoint (HTTP `GET /metrics` over the channel).
    public static let metrics = ServiceName(trusted: "metrics")

    /// Validates `raw`; returns nil when it is not a valid service name.
    public init?(_ raw: some StringProtocol) {
        guard Self.isValid(raw) else { return nil }
        self.value = String(raw).lowercased()
    }

    /// Validates `raw`, throwing an error whose message names `context`
    /// (a flag, a file and key, ...) and says what a valid name looks like.
    public init(validating raw: some StringProtocol, context: String) throws(FivedCoreError) {
        guard let name = ServiceName(raw) else {
            throw FivedCoreError(
                .invalidServiceName,
                "\(context): invalid service name '\(Self.printable(raw))': use 1 to 64 letters, digits, '.', '_' or '-'"
            )
        }
        self = name
    }

    private init(trusted: String) { self.value = trusted }

    /// True when `raw` is 1 to 64 bytes of `[A-Za-z0-9._-]`.
    public static func isValid(_ raw: some StringProtocol) -> Bool {
        let bytes = raw.utf8
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2E || b == 0x5F || b == 0x2D
        }
    }

    /// True for the names fived answers itself (`help`, `status`, `metrics`).
    public var isReserved: Bool { self == .help || self == .status || self == .metrics }

    public var description: String { value }

    public static func < (lhs: ServiceName, rhs: ServiceName) -> Bool { lhs.value < rhs.value }

    /// A version of untrusted text that is safe to put in a log line or error message:
    /// control characters escaped, cut at 80 characters.
    public static func printable(_ raw: some StringProtocol) -> String {
        var out = ""
        for scalar in String(raw).unicodeScalars.prefix(80) {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\x" + String(scalar.value, radix: 16, uppercase: false).leftPadded(to: 2)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        if String(raw).unicodeScalars.count > 80 { out += "..." }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Certificate validity times (PROTOCOL.certkeys: uint64 seconds since
/// 1970-01-01T00:00:00Z) as log text, without Foundation's calendar.
enum CertificateTime {
    /// `valid before` meaning "no end" (`ssh-keygen -V ...:forever`).
    static let forever = UInt64.max

    /// The last second of year 9999, the last one ISO 8601 writes with four digits.
    private static let lastFourDigitSecond: UInt64 = 253_402_300_799

    /// `2026-11-29T10:00:00Z`; `forever` for `UInt64.max`; the raw number with
    /// "seconds since the epoch" past year 9999.
    static func format(_ seconds: UInt64) -> String {
        if seconds == forever { return "forever" }
        guard seconds <= lastFourDigitSecond else { return "\(seconds) (seconds since the epoch)" }
        let s = Int64(seconds)
        let days = s / 86_400
        let rest = s % 86_400
        // Howard Hinnant's civil_from_days, days counted from 1970-01-01.
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let y = String(year)
        let paddedYear = String(repeating: "0", count: max(0, 4 - y.count)) + y
        return "\(paddedYear)-\(two(month))-\(two(day))T\(two(rest / 3600)):\(two(rest % 3600 / 60)):\(two(rest % 60))Z"
    }
}

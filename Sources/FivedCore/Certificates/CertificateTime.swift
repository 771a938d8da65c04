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
        // Years 1970 to 9999 here, all four digits: the status table's conversion serves.
        return StatusReport.timestamp(Int64(seconds))
    }
}

/// Text from a config file or flag made safe to quote in a one-line message or the
/// `--check` table: control characters escaped as `\xNN`. Unlike
/// `ServiceName.printable` it keeps paths whole (up to `limit` scalars), since a
/// cut program or socket path would send the reader looking for the wrong file.
public enum DisplayText {
    /// `raw` with control characters as `\xNN`, cut after `limit` scalars.
    public static func escaped(_ raw: some StringProtocol, limit: Int = 1024) -> String {
        var out = ""
        var count = 0
        for scalar in raw.unicodeScalars {
            if count == limit {
                out += "..."
                break
            }
            count += 1
            if scalar.value < 0x20 || scalar.value == 0x7F {
                let hex = String(scalar.value, radix: 16)
                out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

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

    /// A table as text lines (the `--check` service table, `status`, `fleet`): every
    /// column but a row's last padded to its widest cell plus two spaces.
    public static func aligned(_ table: [[String]]) -> [String] {
        let columns = table.map(\.count).max() ?? 0
        let widths = (0..<columns).map { c in table.map { $0.indices.contains(c) ? $0[c].count : 0 }.max() ?? 0 }
        return table.map { row in
            row.enumerated().map { c, cell in
                c == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[c] - cell.count + 2)
            }.joined()
        }
    }
}

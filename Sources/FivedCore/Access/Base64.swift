/// Standard base64 (RFC 4648 §4) as OpenSSH writes it: the decoder is strict like
/// OpenBSD's `b64_pton` as sshd uses it: padding required, no whitespace, unused
/// bits zero.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    /// Encodes `bytes`, with `=` padding when `padded`.
    static func encode(_ bytes: [UInt8], padded: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i]
            let b1 = i + 1 < bytes.count ? bytes[i + 1] : 0
            let b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            if i + 1 < bytes.count {
                out.append(alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)])
            } else if padded {
                out.append(UInt8(ascii: "="))
            }
            if i + 2 < bytes.count {
                out.append(alphabet[Int(b2 & 0x3F)])
            } else if padded {
                out.append(UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded base64; nil for anything malformed.
    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard !chars.isEmpty, chars.count % 4 == 0 else { return nil }
        var padding = 0
        if chars.last == UInt8(ascii: "=") { padding += 1 }
        if chars.count >= 2, chars[chars.count - 2] == UInt8(ascii: "=") { padding += 1 }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var index = 0
        while index < chars.count {
            var quad: [UInt8] = [0, 0, 0, 0]
            let isLast = index + 4 == chars.count
            for j in 0..<4 {
                let c = chars[index + j]
                if isLast && j >= 4 - padding {
                    continue
                }
                let v = values[Int(c)]
                guard v != 0xFF else { return nil }
                quad[j] = v
            }
            let b0 = quad[0] << 2 | quad[1] >> 4
            let b1 = (quad[1] & 0x0F) << 4 | quad[2] >> 2
            let b2 = (quad[2] & 0x03) << 6 | quad[3]
            if isLast && padding == 2 {
                guard quad[1] & 0x0F == 0 else { return nil }
                out.append(b0)
            } else if isLast && padding == 1 {
                guard quad[2] & 0x03 == 0 else { return nil }
                out += [b0, b1]
            } else {
                out += [b0, b1, b2]
            }
            index += 4
        }
        return out
    }
}

/// The `HOST:PORT` text shared by listen addresses and `tcp:` backends: an IPv4
/// address, a host name, or an IPv6 address in brackets (`[::1]:2222`), then a
/// decimal port. Every message names `context` and shows the form expected.
enum HostPort {
    /// Splits and checks `raw`; `example` is shown in messages ("127.0.0.1:22").
    static func parse(
        _ raw: some StringProtocol,
        allowPortZero: Bool,
        code: FivedCoreError.Code,
        context: String,
        example: String
    ) throws(FivedCoreError) -> (host: String, port: UInt16) {
        let text = Substring(raw)
        let shown = DisplayText.escaped(text)
        func fail(_ why: String) -> FivedCoreError {
            FivedCoreError(code, "\(context): '\(shown)' \(why)")
        }

        let host: Substring
        let portText: Substring
        if text.first == "[" {
            guard let close = text.firstIndex(of: "]") else {
                throw fail("has '[' without ']': write an IPv6 address as [::1]:PORT")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.first == ":" else {
                throw fail("has no port: use HOST:PORT, e.g. \(example)")
            }
            portText = rest.dropFirst()
            guard isIPv6(host) else {
                throw fail("has '\(DisplayText.escaped(host))' in brackets, which is not an IPv6 address")
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw fail("has no port: use HOST:PORT, e.g. \(example)")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                throw fail("looks like a bare IPv6 address: put it in brackets, e.g. [::1]:PORT")
            }
            guard !host.isEmpty else {
                throw fail("has no host: use HOST:PORT, e.g. \(example)")
            }
            guard isIPv4(host) || (!looksNumeric(host) && isHostName(host)) else {
                throw fail("has '\(DisplayText.escaped(host))', which is not a host name or an IP address")
            }
        }

        let lowest = allowPortZero ? 0 : 1
        guard !portText.isEmpty, portText.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let port = Int(portText), port >= lowest, port <= 65535
        else {
            throw fail("has port '\(DisplayText.escaped(portText))': use a number from \(lowest) to 65535")
        }
        return (String(host), UInt16(port))
    }

    /// Renders `host` and `port` back in the same form: brackets around IPv6.
    static func render(host: String, port: UInt16) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// True for a dotted-quad IPv4 address (each part 0 to 255).
    static func isIPv4(_ s: Substring) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 3 && part.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
                    && Int(part)! <= 255
            }
    }

    /// True for an IPv6 address in text form (RFC 4291 section 2.2), with an
    /// optional `%zone` as link-local addresses need.
    static func isIPv6(_ s: Substring) -> Bool {
        var address = s
        if let percent = s.firstIndex(of: "%") {
            let zone = s[s.index(after: percent)...]
            guard !zone.isEmpty, zone.utf8.allSatisfy(isNameByte) else { return false }
            address = s[..<percent]
        }
        let gaps = address.ranges(of: "::")
        guard gaps.count <= 1 else { return false }
        if let gap = gaps.first {
            guard let left = groups(address[..<gap.lowerBound], mayEndInIPv4: false),
                let right = groups(address[gap.upperBound...], mayEndInIPv4: true)
            else { return false }
            return left + right <= 7
        }
        return groups(address, mayEndInIPv4: true) == 8
    }

    /// Counts the 16-bit groups in a colon-separated run (an IPv4 tail counts as two);
    /// nil when a group is malformed.
    private static func groups(_ run: Substring, mayEndInIPv4: Bool) -> Int? {
        if run.isEmpty { return 0 }
        let parts = run.split(separator: ":", omittingEmptySubsequences: false)
        var count = 0
        for (i, part) in parts.enumerated() {
            if mayEndInIPv4 && i == parts.count - 1 && part.contains(".") {
                guard isIPv4(part) else { return nil }
                count += 2
            } else {
                guard (1...4).contains(part.count), part.utf8.allSatisfy(isHexByte) else { return nil }
                count += 1
            }
        }
        return count
    }

    /// True for a DNS host name: dot-separated labels of letters, digits, `-` and `_`.
    static func isHostName(_ s: Substring) -> Bool {
        guard s.utf8.count <= 253 else { return false }
        let labels = s.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.utf8.allSatisfy(isNameByte)
        }
    }

    /// Digits and dots only: meant as an IPv4 address, so it must be a valid one.
    private static func looksNumeric(_ s: Substring) -> Bool {
        s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }
    }

    private static func isHexByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
    }

    private static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
            || b == 0x2E
    }
}

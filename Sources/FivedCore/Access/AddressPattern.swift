/// The pattern list of an authorized_keys `from="..."` option, matched as sshd's
/// `match_host_and_ip` does with `UseDNS no`: the client's host name is its IP
/// address in text form. fived never resolves names, so a pattern such as
/// `*.example.com` can only match an address literally.
///
/// The list is comma separated. Each entry may start with `!` (negation); a
/// matching negated entry refuses the client whatever else matches. An entry is
/// either an address or CIDR network (`10.0.0.0/8`, `2001:db8::/32`, matched
/// numerically) or a wildcard pattern with `*` and `?` (`192.168.1.*`) matched
/// against the address text; an address entry also matches as text, as in sshd.
/// An IPv4-mapped client address (`::ffff:10.1.2.3`) is treated as IPv4, so it
/// matches IPv4 entries, as sshd normalises it (canohost.c
/// `ipv64_normalise_mapped`); an IPv4-mapped entry (`::ffff:10.0.0.0/104`) stays
/// the IPv6 network it is written as (addrmatch.c `addr_pton`), so it matches no
/// client, exactly as in sshd.
public struct AddressPattern: Sendable, Equatable, CustomStringConvertible {
    /// The pattern list exactly as written.
    public let text: String
    private let entries: [Entry]

    private struct Entry: Sendable, Equatable {
        var negated: Bool
        /// The entry as written (without `!`), for wildcard matching.
        var pattern: [UInt8]
        /// Set when the entry parses as an address or CIDR network.
        var network: (address: IPAddress, prefix: Int)?

        static func == (a: Entry, b: Entry) -> Bool {
            a.negated == b.negated && a.pattern == b.pattern && a.network?.address == b.network?.address
                && a.network?.prefix == b.network?.prefix
        }
    }

    /// The longest entry sshd matches (its buffer is 1024 bytes).
    static let maximumEntryLength = 1023

    /// Parses a pattern list, rejecting what sshd rejects at authentication time:
    /// empty entries, a mask longer than the address, host bits set below the mask
    /// (`10.0.0.1/8`). `context` names the file and line for the error.
    public init(parsing raw: some StringProtocol, context: String) throws(FivedCoreError) {
        let text = String(raw)
        var entries: [Entry] = []
        for piece in text.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            var bytes = Array(piece)
            var negated = false
            if bytes.first == UInt8(ascii: "!") {
                negated = true
                bytes.removeFirst()
            }
            guard !bytes.isEmpty else {
                throw FivedCoreError(.authorizedKeyMalformed, "\(context): from=\"\(ServiceName.printable(text))\" has an empty entry")
            }
            guard bytes.count <= Self.maximumEntryLength else {
                throw FivedCoreError(.authorizedKeyMalformed, "\(context): from= entry longer than \(Self.maximumEntryLength) bytes")
            }
            let network: (IPAddress, Int)?
            switch Self.parseNetwork(bytes) {
            case .notAnAddress: network = nil
            case .network(let a, let p): network = (a, p)
            case .invalid(let why):
                throw FivedCoreError(
                    .authorizedKeyMalformed,
                    "\(context): from= entry '\(ServiceName.printable(String(decoding: bytes, as: UTF8.self)))' \(why)")
            }
            entries.append(Entry(negated: negated, pattern: bytes, network: network))
        }
        self.text = text
        self.entries = entries
    }

    /// Parses a certificate's `source-address` critical option as sshd's
    /// `addr_match_cidr_list` reads it (addrmatch.c; PROTOCOL.certkeys): a
    /// comma-separated list of addresses and CIDR networks only, with no
    /// wildcards and no negation, each entry at most 49 characters of
    /// `0-9a-fA-F.:/`, no host bits set below the mask. The error names `context`.
    public init(sourceAddressList raw: some StringProtocol, context: String) throws(FivedCoreError) {
        let text = String(raw)
        func invalid(_ why: String) -> FivedCoreError {
            FivedCoreError(.certificateMalformed, "\(context): source-address \"\(ServiceName.printable(text))\" \(why)")
        }
        let allowed = Set("0123456789abcdefABCDEF.:/".utf8)
        var entries: [Entry] = []
        for piece in text.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let bytes = Array(piece)
            guard !bytes.isEmpty else { throw invalid("has an empty entry") }
            // INET6_ADDRSTRLEN (46) plus a /128 mask, as addrmatch.c bounds it.
            guard bytes.count <= 49 else { throw invalid("has an entry longer than 49 characters") }
            guard bytes.allSatisfy(allowed.contains) else { throw invalid("may hold only addresses and CIDR networks") }
            switch Self.parseNetwork(bytes) {
            case .network(let address, let prefix):
                entries.append(Entry(negated: false, pattern: bytes, network: (address, prefix)))
            case .notAnAddress:
                throw invalid("has an entry that is not an address or CIDR network")
            case .invalid(let why):
                throw invalid("entry '\(String(decoding: bytes, as: UTF8.self))' \(why)")
            }
        }
        self.text = text
        self.entries = entries
    }

    private enum NetworkParse {
        case notAnAddress
        case network(IPAddress, Int)
        case invalid(String)
    }

    /// sshd's `addr_pton_cidr`: ADDRESS[/BITS]; anything that is not an address is
    /// a wildcard pattern instead, but a bad mask on a good address is an error.
    private static func parseNetwork(_ bytes: [UInt8]) -> NetworkParse {
        guard bytes.count < 64 else { return .notAnAddress }
        let parts = bytes.split(separator: UInt8(ascii: "/"), maxSplits: 1, omittingEmptySubsequences: false)
        let addressText = String(decoding: parts[0], as: UTF8.self)
        var prefix: Int? = nil
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                return .notAnAddress
            }
            prefix = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        guard let parsed = IPAddress(addressText), !addressText.hasPrefix("[") else { return .notAnAddress }
        var address = parsed
        var bits: Int
        if case .v4 = parsed, addressText.utf8.contains(UInt8(ascii: ":")) {
            // Written as IPv4-mapped IPv6: an IPv6 network with a 128-bit mask.
            bits = prefix ?? 128
            guard bits <= 128 else { return .invalid("has a mask longer than 128 bits") }
            address = .v6(parsed.mappedToV6)
        } else {
            let width = parsed.bytes.count * 8
            bits = prefix ?? width
            guard bits <= width else { return .invalid("has a mask longer than \(width) bits") }
        }
        return Self.checkHostBits(address, bits)
    }

    private static func checkHostBits(_ address: IPAddress, _ bits: Int) -> NetworkParse {
        let masked = Self.masked(address.bytes, bits)
        guard masked == address.bytes else {
            return .invalid("has address bits set beyond its /\(bits) mask")
        }
        return .network(address, bits)
    }

    private static func masked(_ bytes: [UInt8], _ bits: Int) -> [UInt8] {
        var out = bytes
        for i in 0..<out.count {
            let keep = max(0, min(8, bits - i * 8))
            out[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        return out
    }

    /// True when the client at `address` is admitted.
    public func matches(_ address: IPAddress) -> Bool {
        matches(text: Array(address.description.utf8), address: address)
    }

    /// True when the client whose address is `text` is admitted; text that is not
    /// a numeric address can still match wildcard entries, as a host name would.
    public func matches(address text: some StringProtocol) -> Bool {
        if let address = IPAddress(text) { return matches(address) }
        return matches(text: Array(text.utf8), address: nil)
    }

    private func matches(text: [UInt8], address: IPAddress?) -> Bool {
        // Pass 1, sshd's addr_match_list: networks numerically, the rest as
        // case-sensitive wildcards; only when the client has a numeric address.
        var addressMatched = false
        if let address {
            for entry in entries {
                let hit: Bool
                if let network = entry.network {
                    hit =
                        Self.sameFamily(address, network.address)
                        && Self.masked(address.bytes, network.prefix) == network.address.bytes
                } else {
                    hit = Wildcard.matches(text, pattern: entry.pattern)
                }
                if hit {
                    if entry.negated { return false }
                    addressMatched = true
                }
            }
        }
        // Pass 2, sshd's match_hostname: every entry as a lower-cased wildcard
        // pattern against the host name, which is the address text here.
        var hostMatched = false
        for entry in entries where Wildcard.matches(text, pattern: entry.pattern.map(Self.asciiLower)) {
            if entry.negated { return false }
            hostMatched = true
        }
        return addressMatched || hostMatched
    }

    private static func sameFamily(_ a: IPAddress, _ b: IPAddress) -> Bool {
        switch (a, b) {
        case (.v4, .v4), (.v6, .v6): return true
        default: return false
        }
    }

    static func asciiLower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b + 0x20 : b }

    public var description: String { text }
}

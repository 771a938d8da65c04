/// A PROXY protocol version 2 header (haproxy's proxy-protocol.txt §2.2) with
/// command PROXY over TCP, as fived sends it ahead of a service's bytes when
/// `proxy_protocol = true`: the SSH client's address as source, fived's as
/// destination, and TLVs naming the caller.
///
/// Both addresses are carried in one family: IPv4-mapped IPv6 is IPv4 (see
/// `IPAddress`), and when one side is IPv4 and the other IPv6 the IPv4 side is
/// sent IPv4-mapped.
public struct ProxyV2Header: Sendable, Equatable {
    /// One type-length-value field.
    public struct TLV: Sendable, Equatable {
        /// The type byte.
        public var type: UInt8
        /// The value bytes (at most 65535).
        public var value: [UInt8]

        /// A TLV of `type` carrying `value`.
        public init(type: UInt8, value: [UInt8]) {
            self.type = type
            self.value = value
        }
    }

    /// PP2_TYPE_UNIQUE_ID: an opaque id of at most 128 bytes.
    public static let uniqueIDType: UInt8 = 0x05
    /// fived's TLV: the service name.
    public static let serviceType: UInt8 = 0xE0
    /// fived's TLV: the SSH user name.
    public static let userType: UInt8 = 0xE1
    /// fived's TLV: the key fingerprint (`SHA256:...`).
    public static let fingerprintType: UInt8 = 0xE2
    /// fived's TLV: the key comment (UTF-8, no terminator).
    public static let commentType: UInt8 = 0xE3
    /// fived's TLV, with a certificate: its key ID.
    public static let certificateKeyIDType: UInt8 = 0xE4
    /// fived's TLV, with a certificate: its serial, as decimal text.
    public static let certificateSerialType: UInt8 = 0xE5
    /// fived's TLV, with a certificate: the principal that admitted the login.
    public static let certificatePrincipalType: UInt8 = 0xE6
    /// fived's TLV, with a certificate: the CA key's fingerprint (`SHA256:...`).
    public static let certificateCAFingerprintType: UInt8 = 0xE7
    /// The longest UNIQUE_ID the specification allows.
    public static let maximumUniqueIDLength = 128

    /// The 12-byte signature that opens every v2 header.
    public static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// Where the connection comes from (the SSH client).
    public var sourceAddress: IPAddress
    /// The client's port.
    public var sourcePort: UInt16
    /// Where it was accepted (fived's listener).
    public var destinationAddress: IPAddress
    /// fived's port.
    public var destinationPort: UInt16
    /// The TLVs, in order.
    public var tlvs: [TLV]

    /// A header with explicit TLVs.
    public init(
        sourceAddress: IPAddress, sourcePort: UInt16, destinationAddress: IPAddress, destinationPort: UInt16,
        tlvs: [TLV] = []
    ) {
        self.sourceAddress = sourceAddress
        self.sourcePort = sourcePort
        self.destinationAddress = destinationAddress
        self.destinationPort = destinationPort
        self.tlvs = tlvs
    }

    /// The header fived sends: addresses, then UNIQUE_ID, service, user, key
    /// fingerprint and key comment TLVs in that order.
    public init(
        sourceAddress: IPAddress, sourcePort: UInt16, destinationAddress: IPAddress, destinationPort: UInt16,
        uniqueID: [UInt8], service: ServiceName, user: String, keyFingerprint: String, keyComment: String
    ) {
        self.init(
            sourceAddress: sourceAddress, sourcePort: sourcePort,
            destinationAddress: destinationAddress, destinationPort: destinationPort,
            tlvs: [
                TLV(type: Self.uniqueIDType, value: uniqueID),
                TLV(type: Self.serviceType, value: Array(service.value.utf8)),
                TLV(type: Self.userType, value: Array(user.utf8)),
                TLV(type: Self.fingerprintType, value: Array(keyFingerprint.utf8)),
                TLV(type: Self.commentType, value: Array(keyComment.utf8)),
            ])
    }

    /// The first TLV of `type`, if any.
    public func value(of type: UInt8) -> [UInt8]? { tlvs.first { $0.type == type }?.value }

    /// The encoded header. Throws `.proxyProtocol` when a UNIQUE_ID is longer
    /// than 128 bytes or the TLVs do not fit the 16-bit length field.
    public func encoded() throws(FivedCoreError) -> [UInt8] {
        var addressBlock: [UInt8]
        let family: UInt8
        switch (sourceAddress, destinationAddress) {
        case (.v4(let s), .v4(let d)):
            family = 0x11  // AF_INET, STREAM
            addressBlock = s + d
        default:
            family = 0x21  // AF_INET6, STREAM
            addressBlock = sourceAddress.mappedToV6 + destinationAddress.mappedToV6
        }
        addressBlock += Self.bigEndian(sourcePort) + Self.bigEndian(destinationPort)
        var body = addressBlock
        for tlv in tlvs {
            if tlv.type == Self.uniqueIDType, tlv.value.count > Self.maximumUniqueIDLength {
                throw FivedCoreError(
                    .proxyProtocol, "PROXY v2 UNIQUE_ID is \(tlv.value.count) bytes; at most \(Self.maximumUniqueIDLength) allowed")
            }
            guard tlv.value.count <= Int(UInt16.max) else {
                throw FivedCoreError(.proxyProtocol, "PROXY v2 TLV 0x\(String(tlv.type, radix: 16)) is longer than 65535 bytes")
            }
            body.append(tlv.type)
            body += Self.bigEndian(UInt16(tlv.value.count))
            body += tlv.value
        }
        guard body.count <= Int(UInt16.max) else {
            throw FivedCoreError(.proxyProtocol, "PROXY v2 header would be \(body.count) bytes; at most 65535 fit")
        }
        return Self.signature + [0x21, family] + Self.bigEndian(UInt16(body.count)) + body
    }

    /// What `decode` found at the start of a byte stream.
    public enum Decoded: Sendable, Equatable {
        /// Not enough bytes yet to tell.
        case needMore
        /// A header, and how many bytes it took.
        case header(ProxyV2Header, length: Int)
        /// Not a PROXY v2 PROXY/TCP header fived could have sent.
        case invalid(FivedCoreError)
    }

    /// Decodes a header from the start of `bytes` (for tests and test backends).
    /// Accepts only version 2, command PROXY, TCP over IPv4 or IPv6, with
    /// well-formed TLVs.
    public static func decode(_ bytes: some Collection<UInt8>) -> Decoded {
        let b = Array(bytes.prefix(16 + Int(UInt16.max)))
        func invalid(_ why: String) -> Decoded { .invalid(FivedCoreError(.proxyProtocol, "PROXY v2 header: \(why)")) }
        let prefix = min(b.count, signature.count)
        guard b[..<prefix].elementsEqual(signature[..<prefix]) else { return invalid("bad signature") }
        guard b.count >= 16 else { return .needMore }
        guard b[12] == 0x21 else { return invalid("version/command byte 0x\(String(b[12], radix: 16)) is not 2/PROXY") }
        let length = Int(b[14]) << 8 | Int(b[15])
        guard b.count >= 16 + length else { return .needMore }
        let body = Array(b[16..<16 + length])
        let addressLength: Int
        switch b[13] {
        case 0x11: addressLength = 12
        case 0x21: addressLength = 36
        default: return invalid("family/protocol byte 0x\(String(b[13], radix: 16)) is not TCP over IPv4 or IPv6")
        }
        guard body.count >= addressLength else { return invalid("address block shorter than its family needs") }
        let half = (addressLength - 4) / 2
        guard let source = IPAddress(bytes: Array(body[0..<half])),
            let destination = IPAddress(bytes: Array(body[half..<2 * half]))
        else { return invalid("bad addresses") }
        let sourcePort = UInt16(body[2 * half]) << 8 | UInt16(body[2 * half + 1])
        let destinationPort = UInt16(body[2 * half + 2]) << 8 | UInt16(body[2 * half + 3])
        var tlvs: [TLV] = []
        var i = addressLength
        while i < body.count {
            guard body.count - i >= 3 else { return invalid("truncated TLV header") }
            let type = body[i]
            let tlvLength = Int(body[i + 1]) << 8 | Int(body[i + 2])
            guard body.count - i - 3 >= tlvLength else { return invalid("TLV 0x\(String(type, radix: 16)) runs past the header") }
            tlvs.append(TLV(type: type, value: Array(body[(i + 3)..<(i + 3 + tlvLength)])))
            i += 3 + tlvLength
        }
        let header = ProxyV2Header(
            sourceAddress: source, sourcePort: sourcePort, destinationAddress: destination,
            destinationPort: destinationPort, tlvs: tlvs)
        return .header(header, length: 16 + length)
    }

    private static func bigEndian(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
}

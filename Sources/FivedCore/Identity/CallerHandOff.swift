/// What a service learns about its caller (SPEC.md, "What a service learns
/// about its caller"), built in one place for every way fived reaches a
/// service: the exec environment, and the PROXY protocol v2 header.
///
/// An SSH caller carries the user, key and comment, and with a certificate its
/// key ID, serial, principal and CA; a client of the plain TCPMUX listener
/// carries only its address (and no UNIQUE_ID: there is no channel).
public struct CallerHandOff: Sendable, Equatable {
    /// The service being opened.
    public var service: ServiceName
    /// The authenticated caller; nil on the plain TCPMUX listener.
    public var caller: Caller?
    /// The client's address and port (the SSH or TCPMUX client).
    public var clientAddress: String
    public var clientPort: UInt16
    /// fived's address and port where the client connected.
    public var localAddress: String
    public var localPort: UInt16
    /// The channel's id, unique in the process (PROXY v2 UNIQUE_ID); nil without a channel.
    public var channelID: UInt64?

    public init(
        service: ServiceName, caller: Caller?, clientAddress: String, clientPort: UInt16,
        localAddress: String, localPort: UInt16, channelID: UInt64?
    ) {
        self.service = service
        self.caller = caller
        self.clientAddress = clientAddress
        self.clientPort = clientPort
        self.localAddress = localAddress
        self.localPort = localPort
        self.channelID = channelID
    }

    /// The fixed search path every exec service gets (not fived's own).
    public static let path = "PATH=/usr/local/bin:/usr/bin:/bin"

    /// An exec service's environment, `NAME=value` strings: PATH, the FIVED_*
    /// names and the UCSPI names (PROTO, TCPREMOTEIP, ...), nothing of fived's
    /// own. A NUL in a value (which exec cannot carry) becomes `?`.
    public var environment: [String] {
        var entries = [Self.path, "FIVED_SERVICE=\(service.value)"]
        if let caller {
            entries += [
                "FIVED_USER=\(caller.user)",
                "FIVED_KEY_FINGERPRINT=\(caller.key.blob.fingerprint)",
                "FIVED_KEY_COMMENT=\(caller.key.comment)",
            ]
            if let certificate = caller.certificate {
                entries += [
                    "FIVED_CERT_KEY_ID=\(certificate.keyID)",
                    "FIVED_CERT_SERIAL=\(certificate.serial)",
                    "FIVED_CERT_PRINCIPAL=\(certificate.principal)",
                    "FIVED_CERT_CA_FINGERPRINT=\(certificate.caFingerprint)",
                ]
            }
        }
        entries += [
            "FIVED_CLIENT_ADDR=\(clientAddress)",
            "FIVED_CLIENT_PORT=\(clientPort)",
            "PROTO=TCP",
            "TCPREMOTEIP=\(clientAddress)",
            "TCPREMOTEPORT=\(clientPort)",
            "TCPLOCALIP=\(localAddress)",
            "TCPLOCALPORT=\(localPort)",
        ]
        return entries.map { entry in String(entry.map { $0 == "\u{0}" ? "?" : $0 }) }
    }

    /// The PROXY v2 header: the client as source, fived as destination, then
    /// (with a caller) UNIQUE_ID and the 0xE0–0xE3 TLVs, and 0xE4–0xE7 for a
    /// certificate, or (TCPMUX) the 0xE0 service TLV alone. Nil when an address is not numeric IP (it always is for TCP).
    public var proxyHeader: ProxyV2Header? {
        guard let source = IPAddress(clientAddress), let destination = IPAddress(localAddress) else { return nil }
        guard let caller else {
            return ProxyV2Header(
                sourceAddress: source, sourcePort: clientPort, destinationAddress: destination, destinationPort: localPort,
                tlvs: [.init(type: ProxyV2Header.serviceType, value: Array(service.value.utf8))])
        }
        var header = ProxyV2Header(
            sourceAddress: source, sourcePort: clientPort, destinationAddress: destination, destinationPort: localPort,
            uniqueID: Array(String(channelID ?? 0).utf8), service: service, user: caller.user,
            keyFingerprint: caller.key.blob.fingerprint, keyComment: caller.key.comment)
        if let certificate = caller.certificate {
            header.tlvs += [
                .init(type: ProxyV2Header.certificateKeyIDType, value: Array(certificate.keyID.utf8)),
                .init(type: ProxyV2Header.certificateSerialType, value: Array(String(certificate.serial).utf8)),
                .init(type: ProxyV2Header.certificatePrincipalType, value: Array(certificate.principal.utf8)),
                .init(type: ProxyV2Header.certificateCAFingerprintType, value: Array(certificate.caFingerprint.utf8)),
            ]
        }
        return header
    }
}

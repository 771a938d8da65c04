/// The caller of a channel that one node relays to another (SPEC.md, "Fleet"):
/// everything the owner node needs to re-check the name's allow list and tell
/// the service who is calling, exactly as the entry node authenticated it.
///
/// It travels in the originator address field of the relayed `direct-tcpip`
/// open (RFC 4254 §7.2) on the node-to-node connection, as text:
///
///     fived-caller-1:BASE64
///
/// where BASE64 is standard padded base64 of these SSH wire fields (RFC 4251 §5):
///
///     string  entry node name       (NodeName: 1-32 of [a-z0-9_-])
///     string  user                  (UTF-8, 1-256 bytes, no NUL)
///     string  public key blob       (a valid key of a supported type, <= 16384 bytes)
///     string  key comment           (UTF-8, <= 1024 bytes, no NUL)
///     string  client address        (IPv4 or IPv6, numeric)
///     uint32  client port           (<= 65535)
///     string  entry listener address (numeric)
///     uint32  entry listener port   (<= 65535)
///     uint64  channel id on the entry node
///     byte    certificate follows   (0 or 1)
///     -- when 1:
///     string  certificate key ID    (UTF-8, <= 1024 bytes, no NUL)
///     uint64  certificate serial
///     string  matched principal     (UTF-8, 1-1024 bytes, no NUL)
///     string  CA fingerprint        (SHA256: and 43 base64 characters)
///
/// Nothing may follow. The owner node honours it only on a connection that
/// logged in with a key of `peers_authorized_keys`; from anyone else it is an
/// ordinary (and meaningless) originator string.
public struct RelayedCaller: Sendable, Equatable {
    /// The node the caller is connected to.
    public var entryNode: NodeName
    /// The SSH user name the caller logged in with.
    public var user: String
    /// The caller's key (for a certificate, the certified key).
    public var key: PublicKeyBlob
    /// The comment of the authorized_keys line that admitted the key.
    public var keyComment: String
    /// The caller's address and port, as the entry node saw them.
    public var clientAddress: String
    public var clientPort: UInt16
    /// The entry node's listener address and port where the caller connected.
    public var localAddress: String
    public var localPort: UInt16
    /// The channel's id on the entry node (PROXY v2 UNIQUE_ID on the owner).
    public var channelID: UInt64
    /// The certificate's key ID, serial, principal and CA, when the caller used one.
    public var certificate: Certificate?

    /// What a certificate told the entry node, as services learn it.
    public struct Certificate: Sendable, Equatable {
        public var keyID: String
        public var serial: UInt64
        public var principal: String
        public var caFingerprint: String

        public init(keyID: String, serial: UInt64, principal: String, caFingerprint: String) {
            self.keyID = keyID
            self.serial = serial
            self.principal = principal
            self.caFingerprint = caFingerprint
        }
    }

    /// The tag before the base64 text; a new layout gets a new number.
    public static let tag = "fived-caller-1:"
    /// The longest originator text accepted, in bytes.
    public static let maximumEncodedLength = 32768
    /// Bounds of the text fields, in bytes.
    public static let maximumUserLength = 256
    public static let maximumCommentLength = 1024
    public static let maximumKeyIDLength = 1024

    public init(
        entryNode: NodeName, user: String, key: PublicKeyBlob, keyComment: String, clientAddress: String, clientPort: UInt16,
        localAddress: String, localPort: UInt16, channelID: UInt64, certificate: Certificate? = nil
    ) {
        self.entryNode = entryNode
        self.user = user
        self.key = key
        self.keyComment = keyComment
        self.clientAddress = clientAddress
        self.clientPort = clientPort
        self.localAddress = localAddress
        self.localPort = localPort
        self.channelID = channelID
        self.certificate = certificate
    }

    /// The caller the entry node authenticated, relayed from `entryNode`.
    public init(entryNode: NodeName, caller: Caller, localAddress: String, localPort: UInt16, channelID: UInt64) {
        self.init(
            entryNode: entryNode, user: caller.user, key: caller.key.blob, keyComment: caller.key.comment,
            clientAddress: caller.address, clientPort: caller.port, localAddress: localAddress, localPort: localPort,
            channelID: channelID,
            certificate: caller.certificate.map {
                Certificate(keyID: $0.keyID, serial: $0.serial, principal: $0.principal, caFingerprint: $0.caFingerprint)
            })
    }

    /// The caller as the owner node's access policy and hand-off see it. The
    /// entry node applied the key's authorized_keys options and the certificate's
    /// restrictions already, so here the key carries no options (and the
    /// certificate no restrictions): only the name's allow list decides.
    public var caller: Caller {
        var options = KeyOptions()
        options.portForwarding = true
        var restrictions = CertificateRestrictions()
        restrictions.permitPortForwarding = true
        return Caller(
            user: user,
            key: AuthorizedKey(blob: key, comment: keyComment, options: options, file: "relayed by node \(entryNode)", line: 0),
            address: clientAddress, port: clientPort,
            certificate: certificate.map {
                CertificateIdentity(
                    keyID: $0.keyID, serial: $0.serial, principal: $0.principal, caFingerprint: $0.caFingerprint,
                    restrictions: restrictions)
            })
    }

    /// The originator text: the tag and the base64 of the wire fields.
    public var encoded: String {
        var w = WireWriter()
        w.string(entryNode.value)
        w.string(user)
        w.string(key.bytes)
        w.string(keyComment)
        w.string(clientAddress)
        w.uint32(UInt32(clientPort))
        w.string(localAddress)
        w.uint32(UInt32(localPort))
        w.uint64(channelID)
        if let certificate {
            w.byte(1)
            w.string(certificate.keyID)
            w.uint64(certificate.serial)
            w.string(certificate.principal)
            w.string(certificate.caFingerprint)
        } else {
            w.byte(0)
        }
        return Self.tag + Base64.encode(w.bytes, padded: true)
    }

    /// True when `originator` claims to be a relayed caller (then `init(decoding:)` must accept it).
    public static func isRelayed(_ originator: String) -> Bool {
        originator.utf8.starts(with: tag.utf8)
    }

    /// Parses and validates an originator text; every field is checked and
    /// bounded, and nothing may follow the last. Never traps.
    public init(decoding originator: String) throws(FivedCoreError) {
        func bad(_ why: String) -> FivedCoreError { FivedCoreError(.relayedCallerMalformed, "relayed caller: \(why)") }
        let utf8 = originator.utf8
        guard utf8.count <= Self.maximumEncodedLength else { throw bad("longer than \(Self.maximumEncodedLength) bytes") }
        guard utf8.starts(with: Self.tag.utf8) else { throw bad("does not start with \(Self.tag)") }
        guard let raw = Base64.decode(originator.dropFirst(Self.tag.count)) else { throw bad("not base64") }
        var r = WireReader(raw)
        func text(_ field: String, max: Int, min: Int = 0) throws(FivedCoreError) -> String {
            guard let bytes = r.cString() else { throw bad("\(field) missing or holds a NUL") }
            guard bytes.count >= min, bytes.count <= max else { throw bad("\(field) is \(bytes.count) bytes, not \(min) to \(max)") }
            guard let s = String(validating: bytes, as: UTF8.self) else { throw bad("\(field) is not UTF-8") }
            return s
        }
        func address(_ field: String) throws(FivedCoreError) -> String {
            let s = try text(field, max: 64, min: 1)
            guard let ip = IPAddress(s) else { throw bad("\(field) '\(ServiceName.printable(s))' is not an IP address") }
            return ip.description
        }
        func port(_ field: String) throws(FivedCoreError) -> UInt16 {
            guard let p = r.uint32(), p <= 65535 else { throw bad("\(field) missing or above 65535") }
            return UInt16(p)
        }
        let nodeText = try text("entry node", max: NodeName.maximumLength, min: 1)
        guard let node = NodeName(nodeText), node.value == nodeText else {
            throw bad("entry node '\(ServiceName.printable(nodeText))' is not a node name")
        }
        entryNode = node
        user = try text("user", max: Self.maximumUserLength, min: 1)
        guard let blobBytes = r.string(), blobBytes.count <= PublicKeyBlob.maximumLength, let blob = PublicKeyBlob(bytes: blobBytes) else {
            throw bad("public key missing, too long or not a supported key")
        }
        key = blob
        keyComment = try text("key comment", max: Self.maximumCommentLength)
        clientAddress = try address("client address")
        clientPort = try port("client port")
        localAddress = try address("entry listener address")
        localPort = try port("entry listener port")
        guard let id = r.uint64() else { throw bad("channel id missing") }
        channelID = id
        switch r.byte() {
        case 0?:
            certificate = nil
        case 1?:
            let keyID = try text("certificate key ID", max: Self.maximumKeyIDLength)
            guard let serial = r.uint64() else { throw bad("certificate serial missing") }
            let principal = try text("certificate principal", max: Self.maximumKeyIDLength, min: 1)
            let ca = try text("CA fingerprint", max: 50, min: 1)
            guard (try? AllowRule(parsing: ca, context: "")) == .fingerprint(ca) else {
                throw bad("CA fingerprint '\(ServiceName.printable(ca))' is not SHA256:...")
            }
            certificate = Certificate(keyID: keyID, serial: serial, principal: principal, caFingerprint: ca)
        default:
            throw bad("certificate flag missing or not 0 or 1")
        }
        guard r.isAtEnd else { throw bad("\(r.remaining) bytes after the last field") }
    }
}

import Crypto
import Foundation

/// An OpenSSH certificate (PROTOCOL.certkeys; sshkey.c `cert_parse`): a public
/// key, who it is for and for how long, signed by a certificate authority. This
/// is the blob a client presents in SSH public key authentication and the
/// base64 field of a `-cert.pub` file:
///
/// ```
/// string  type                 e.g. ssh-ed25519-cert-v01@openssh.com
/// string  nonce
/// ...     the key's own fields (as in its plain blob, without the type)
/// uint64  serial
/// uint32  type                 1 user, 2 host
/// string  key id
/// string  valid principals     strings, packed
/// uint64  valid after          seconds since the epoch
/// uint64  valid before         0xffffffffffffffff: forever
/// string  critical options     (string name, string data)*, sorted, unique
/// string  extensions           the same
/// string  reserved
/// string  signature key        the CA's plain public key
/// string  signature            over every byte before this field
/// ```
///
/// Parsing checks the structure only (types, lengths, the embedded keys, option
/// order, no trailing bytes) and never traps; `verifySignature()` checks the CA's
/// signature, and `CertificateCheck` decides whether the certificate admits a user.
public struct OpenSSHCertificate: Sendable, Hashable, CustomStringConvertible {
    /// What the certificate certifies (PROTOCOL.certkeys `SSH_CERT_TYPE_*`).
    public enum Kind: UInt32, Sendable, Hashable {
        /// A user certificate, for public key authentication.
        case user = 1
        /// A host certificate, which a server presents; never valid for a user.
        case host = 2
    }

    /// One critical option or extension: a name and its data, which is the
    /// content of the outer data string (for `force-command`, itself a string).
    public struct Option: Sendable, Hashable, CustomStringConvertible {
        /// The option's name, e.g. `force-command` or `permit-pty`.
        public let name: String
        /// The option's data, empty for a flag.
        public let data: [UInt8]

        /// An option as a certificate carries it.
        public init(name: String, data: [UInt8]) {
            self.name = name
            self.data = data
        }

        /// `name` or `name=<N bytes>`, for logs.
        public var description: String { data.isEmpty ? name : "\(name)=<\(data.count) bytes>" }
    }

    /// The whole blob, as presented.
    public let bytes: [UInt8]
    /// The certificate type string, e.g. `ssh-ed25519-cert-v01@openssh.com`.
    public let certificateType: String
    /// The CA's random nonce.
    public let nonce: [UInt8]
    /// The certified key as a plain key blob: its fingerprint is the one
    /// `ssh-keygen -l` prints for the `-cert.pub` file, and KRLs revoke it by this blob.
    public let key: PublicKeyBlob
    /// The CA's serial number; 0 when the CA does not number its certificates.
    public let serial: UInt64
    /// User or host.
    public let kind: Kind
    /// The key ID the CA gave (`ssh-keygen -I`), for logs and revocation.
    public let keyID: String
    /// The principals (user names for a user certificate), in certificate order.
    public let principals: [String]
    /// Valid from this second on (seconds since the epoch).
    public let validAfter: UInt64
    /// Valid up to, not including, this second; `UInt64.max` is forever.
    public let validBefore: UInt64
    /// Critical options, in (sorted) certificate order.
    public let criticalOptions: [Option]
    /// Extensions, in (sorted) certificate order.
    public let extensions: [Option]
    /// The reserved field, ignored.
    public let reserved: [UInt8]
    /// The CA's public key (never itself a certificate).
    public let signatureKey: PublicKeyBlob
    /// The CA's signature blob over `signedBytes`.
    public let signature: [UInt8]
    /// How many leading bytes of `bytes` the signature covers: everything up to
    /// and including the signature key.
    public let signedLength: Int

    /// The certificate types fived parses, with the plain key type each certifies.
    public static let certifiedKeyTypes: [String: String] = [
        "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
        "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
        "sk-ssh-ed25519-cert-v01@openssh.com": "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// The longest certificate blob accepted, in bytes: room for a 16384-bit RSA
    /// key, a 16384-bit RSA CA and its signature, and 256 long principals.
    public static let maximumLength = 65536
    /// sshkey.c's `SSHKEY_CERT_MAX_PRINCIPALS`.
    public static let maximumPrincipals = 256

    /// True when `name` is an OpenSSH certificate key type or certificate
    /// algorithm name (`...-cert-v01@openssh.com`), so that a presented key blob
    /// should be parsed as a certificate rather than as a plain key.
    public static func isCertificateType(_ name: some StringProtocol) -> Bool {
        name.hasSuffix("-cert-v01@openssh.com")
    }

    /// True when a presented key blob starts with a certificate type, so that
    /// authentication should parse it with `init(bytes:context:)` and decide it
    /// with `CertificateCheck` rather than `PublicKeyBlob` and `KeyMatcher`.
    public static func isCertificate(blob: [UInt8]) -> Bool {
        var reader = WireReader(blob)
        guard let type = reader.string(), type.count <= 64 else { return false }
        return isCertificateType(String(decoding: type, as: UTF8.self))
    }

    /// The certificate type a blob carries for a public key algorithm name as a
    /// client sends it in SSH_MSG_USERAUTH_REQUEST (PROTOCOL.certkeys:
    /// `rsa-sha2-256-cert-v01@openssh.com` and `rsa-sha2-512-cert-v01@openssh.com`
    /// name an `ssh-rsa-cert-v01@openssh.com` blob signed with SHA-2); nil for
    /// names that are not certificate algorithms fived parses.
    public static func blobType(forAlgorithm name: String) -> String? {
        switch name {
        case "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com": return "ssh-rsa-cert-v01@openssh.com"
        default: return certifiedKeyTypes[name] == nil ? nil : name
        }
    }

    /// Parses a certificate blob. `context` (e.g. `/home/a/.ssh/id-cert.pub:1` or
    /// `client 192.0.2.7`) starts every error message. Throws
    /// `certificateMalformed` for anything not built as PROTOCOL.certkeys says,
    /// `certificateUnsupported` for a well-formed certificate fived cannot check
    /// (a DSA, chained or unknown CA key).
    public init(bytes: [UInt8], context: String = "certificate") throws(FivedCoreError) {
        func malformed(_ why: String) -> FivedCoreError { FivedCoreError(.certificateMalformed, "\(context): \(why)") }
        guard bytes.count <= Self.maximumLength else {
            throw malformed("certificate longer than \(Self.maximumLength) bytes")
        }
        var reader = WireReader(bytes)
        guard let typeBytes = reader.string(), typeBytes.count <= 64, typeBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw malformed("does not start with a key type")
        }
        let type = String(decoding: typeBytes, as: UTF8.self)
        guard let plainType = Self.certifiedKeyTypes[type] else {
            if Self.isCertificateType(type) {
                throw FivedCoreError(.certificateUnsupported, "\(context): certificate type \(type) is not supported")
            }
            throw malformed("\(ServiceName.printable(type)) is not a certificate type")
        }
        guard let nonce = reader.string() else { throw malformed("truncated nonce") }

        // The certified key: the same fields as its plain blob, after the nonce.
        var plain = WireWriter()
        plain.string(plainType)
        let fieldCount: Int
        switch plainType {
        case "ssh-ed25519": fieldCount = 1
        case "sk-ssh-ed25519@openssh.com", "ssh-rsa": fieldCount = 2
        case "sk-ecdsa-sha2-nistp256@openssh.com": fieldCount = 3
        default: fieldCount = 2  // ECDSA: curve, point
        }
        for _ in 0..<fieldCount {
            guard let field = reader.string() else { throw malformed("truncated \(plainType) key") }
            plain.string(field)
        }
        let key: PublicKeyBlob
        switch PublicKeyBlob.validate(plain.bytes) {
        case .success(let k): key = k
        case .failure(.malformed(let why)), .failure(.unsupportedType(let why)): throw malformed("certified key: \(why)")
        }

        guard let serial = reader.uint64(), let kindValue = reader.uint32() else { throw malformed("truncated serial or type") }
        guard let kind = Kind(rawValue: kindValue) else {
            throw malformed("certificate type \(kindValue) is neither user (1) nor host (2)")
        }
        guard let keyIDBytes = reader.cString() else { throw malformed("truncated key ID or key ID with a NUL byte") }
        guard let keyID = String(validating: keyIDBytes, as: UTF8.self) else { throw malformed("key ID is not UTF-8") }
        guard let principalsBytes = reader.string() else { throw malformed("truncated principals") }
        var principals: [String] = []
        var principalReader = WireReader(principalsBytes)
        while !principalReader.isAtEnd {
            guard principals.count < Self.maximumPrincipals else {
                throw malformed("more than \(Self.maximumPrincipals) principals")
            }
            guard let p = principalReader.cString() else { throw malformed("principal list is malformed") }
            guard let text = String(validating: p, as: UTF8.self) else { throw malformed("a principal is not UTF-8") }
            principals.append(text)
        }
        guard let validAfter = reader.uint64(), let validBefore = reader.uint64() else { throw malformed("truncated validity") }
        guard let critical = reader.string(), let extensions = reader.string(), let reserved = reader.string() else {
            throw malformed("truncated options, extensions or reserved field")
        }
        let criticalOptions = try Self.options(critical, section: "critical options", malformed: malformed)
        let extensionList = try Self.options(extensions, section: "extensions", malformed: malformed)
        guard let caBytes = reader.string() else { throw malformed("truncated signature key") }
        let signedLength = reader.offset
        guard let signature = reader.string() else { throw malformed("truncated signature") }
        guard reader.isAtEnd else { throw malformed("\(reader.remaining) bytes after the signature") }

        let signatureKey: PublicKeyBlob
        switch PublicKeyBlob.validate(caBytes) {
        case .success(let k):
            signatureKey = k
        case .failure(.unsupportedType(let t)) where Self.isCertificateType(t):
            throw FivedCoreError(.certificateUnsupported, "\(context): the CA key is itself a certificate (chained certificates are not supported)")
        case .failure(.unsupportedType(let t)):
            throw FivedCoreError(.certificateUnsupported, "\(context): CA key type \(ServiceName.printable(t)) is not supported")
        case .failure(.malformed(let why)):
            throw malformed("signature key: \(why)")
        }

        self.bytes = bytes
        self.certificateType = type
        self.nonce = nonce
        self.key = key
        self.serial = serial
        self.kind = kind
        self.keyID = keyID
        self.principals = principals
        self.validAfter = validAfter
        self.validBefore = validBefore
        self.criticalOptions = criticalOptions
        self.extensions = extensionList
        self.reserved = reserved
        self.signatureKey = signatureKey
        self.signature = signature
        self.signedLength = signedLength
    }

    /// Decodes padded base64 (the second field of a `-cert.pub` line) and parses it.
    public init(base64: some StringProtocol, context: String = "certificate") throws(FivedCoreError) {
        guard base64.utf8.count <= (Self.maximumLength + 2) / 3 * 4, let raw = Base64.decode(base64) else {
            throw FivedCoreError(.certificateMalformed, "\(context): not valid base64")
        }
        try self.init(bytes: raw, context: context)
    }

    /// Parses one line of a `-cert.pub` file: `TYPE BASE64 [COMMENT]`, where TYPE
    /// must be the blob's own certificate type.
    public init(line: some StringProtocol, context: String) throws(FivedCoreError) {
        // Split on bytes: in Swift "\r\n" is one Character, equal to neither "\r" nor "\n".
        let fields = line.utf8.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A })
            .prefix(2).map { String(decoding: $0, as: UTF8.self) }
        guard fields.count == 2 else {
            throw FivedCoreError(.certificateMalformed, "\(context): expected TYPE BASE64 [COMMENT]")
        }
        try self.init(base64: fields[1], context: context)
        guard certificateType == fields[0] else {
            throw FivedCoreError(
                .certificateMalformed,
                "\(context): the line says \(ServiceName.printable(fields[0])) but the certificate is \(certificateType)")
        }
    }

    /// The options or extensions section (PROTOCOL.certkeys "Critical options"):
    /// pairs of a NUL-free name and a data string, names strictly increasing by
    /// byte value (so sorted and unique, as the format requires).
    private static func options(
        _ section: [UInt8], section name: String, malformed: (String) -> FivedCoreError
    ) throws(FivedCoreError) -> [Option] {
        var reader = WireReader(section)
        var out: [Option] = []
        var previous: [UInt8]? = nil
        while !reader.isAtEnd {
            guard let optionName = reader.cString(), let data = reader.string() else {
                throw malformed("\(name) are malformed")
            }
            let shown = ServiceName.printable(String(decoding: optionName, as: UTF8.self))
            if let previous {
                guard previous != optionName else { throw malformed("\(name): \(shown) appears twice") }
                guard previous.lexicographicallyPrecedes(optionName) else {
                    throw malformed("\(name) are not sorted by name (\(shown) comes too late)")
                }
            }
            previous = optionName
            out.append(Option(name: String(decoding: optionName, as: UTF8.self), data: data))
        }
        return out
    }

    /// The bytes the CA signed: everything before the signature field.
    public var signedBytes: ArraySlice<UInt8> { bytes[..<signedLength] }

    /// Checks the CA's signature over `signedBytes` with `signatureKey`; the
    /// signature algorithm on success (see `SSHSignature` for which are accepted).
    public func verifySignature() -> Result<String, SSHSignature.Failure> {
        SSHSignature.verify(signature, over: signedBytes, with: signatureKey)
    }

    /// The certificate's SHA-256 fingerprint is its key's; this is the CA's.
    public var caFingerprint: String { signatureKey.fingerprint }

    /// `TYPE FINGERPRINT ID "KEY-ID" serial N CA FINGERPRINT`, for logs.
    public var description: String {
        "\(certificateType) \(key.fingerprint) ID \"\(ServiceName.printable(keyID))\" serial \(serial) CA \(signatureKey.fingerprint)"
    }
}

import Crypto

/// An SSH public key in its wire encoding (RFC 4253 §6.6): the bytes that
/// authorized_keys carries in base64 and that a client presents during public key
/// authentication. Two keys are the same key exactly when their blobs are equal.
///
/// Construction validates the structure for the key types sshd accepts in
/// authorized_keys (see `supportedKeyTypes`): the type string, every field's
/// length, curve names and points, RSA sizes, and no trailing bytes. It never
/// traps, whatever the input.
public struct PublicKeyBlob: Hashable, Sendable, CustomStringConvertible {
    /// The encoded key.
    public let bytes: [UInt8]
    /// The SSH string at the start of the blob, e.g. `ssh-ed25519`.
    public let keyType: String

    /// The key types fived honours, as sshd(8) lists them (DSA excepted, which
    /// OpenSSH no longer accepts).
    public static let supportedKeyTypes: [String] = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// The largest blob accepted, in bytes (a 16384-bit RSA key is about 2 KiB).
    public static let maximumLength = 16384

    /// Decodes standard, padded base64 (as in a `.pub` file) and validates the blob.
    public init?(base64: some StringProtocol) {
        guard let raw = Base64.decode(base64), case .success(let blob) = Self.validate(raw) else { return nil }
        self = blob
    }

    /// Validates raw blob bytes; nil when they are not a well-formed key of a
    /// supported type.
    public init?(bytes: [UInt8]) {
        guard case .success(let blob) = Self.validate(bytes) else { return nil }
        self = blob
    }

    private init(validated bytes: [UInt8], keyType: String) {
        self.bytes = bytes
        self.keyType = keyType
    }

    /// `SHA256:` and the unpadded base64 of the SHA-256 of the blob, exactly as
    /// `ssh-keygen -l` prints it.
    public var fingerprint: String {
        let digest = SHA256.hash(data: bytes)
        return "SHA256:" + Base64.encode(Array(digest), padded: false)
    }

    /// The blob in standard padded base64, as a `.pub` file or authorized_keys holds it.
    public var base64: String { Base64.encode(bytes, padded: true) }

    /// `TYPE FINGERPRINT`, for logs.
    public var description: String { "\(keyType) \(fingerprint)" }

    /// Why a blob was rejected: one phrase for an error message.
    enum Problem: Error, Equatable {
        case malformed(String)
        case unsupportedType(String)
    }

    /// The validation behind both initialisers, telling the parser why it failed.
    static func validate(_ bytes: [UInt8]) -> Result<PublicKeyBlob, Problem> {
        guard bytes.count <= maximumLength else { return .failure(.malformed("key blob longer than \(maximumLength) bytes")) }
        var reader = WireReader(bytes)
        guard let typeBytes = reader.string(), !typeBytes.isEmpty, typeBytes.count <= 64,
            typeBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else {
            return .failure(.malformed("key blob does not start with a key type"))
        }
        let type = String(decoding: typeBytes, as: UTF8.self)
        let ok: Bool
        switch type {
        case "ssh-ed25519":
            ok = reader.string()?.count == 32
        case "sk-ssh-ed25519@openssh.com":
            ok = reader.string()?.count == 32 && reader.string() != nil
        case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521":
            ok = Self.readECDSA(&reader, curve: String(type.dropFirst("ecdsa-sha2-".count)))
        case "sk-ecdsa-sha2-nistp256@openssh.com":
            ok = Self.readECDSA(&reader, curve: "nistp256") && reader.string() != nil
        case "ssh-rsa":
            ok = Self.readRSA(&reader)
        default:
            return .failure(.unsupportedType(type))
        }
        guard ok, reader.isAtEnd else { return .failure(.malformed("\(type) key blob is malformed")) }
        return .success(PublicKeyBlob(validated: bytes, keyType: type))
    }

    /// curve name, then an uncompressed point that must lie on the curve.
    private static func readECDSA(_ reader: inout WireReader, curve: String) -> Bool {
        guard let name = reader.string(), String(decoding: name, as: UTF8.self) == curve,
            let point = reader.string()
        else { return false }
        let data = point
        switch curve {
        case "nistp256": return data.count == 65 && (try? P256.Signing.PublicKey(x963Representation: data)) != nil
        case "nistp384": return data.count == 97 && (try? P384.Signing.PublicKey(x963Representation: data)) != nil
        case "nistp521": return data.count == 133 && (try? P521.Signing.PublicKey(x963Representation: data)) != nil
        default: return false
        }
    }

    /// mpint e, mpint n: both positive and minimal, n of 1024 to 16384 bits (sshd's bounds).
    private static func readRSA(_ reader: inout WireReader) -> Bool {
        guard let e = reader.string(), let n = reader.string(),
            let eBits = positiveMPIntBits(e), let nBits = positiveMPIntBits(n)
        else { return false }
        return eBits >= 2 && eBits <= 64 && e.last.map { $0 & 1 == 1 } == true
            && nBits >= 1024 && nBits <= 16384
    }

    /// The bit length of a positive, minimally encoded mpint (RFC 4251 §5); nil otherwise.
    private static func positiveMPIntBits(_ m: [UInt8]) -> Int? {
        guard let first = m.first, first & 0x80 == 0 else { return nil }  // empty is zero; high bit is negative
        var body = m[...]
        if first == 0 {
            // A leading zero is allowed only to keep the next byte's high bit from reading as a sign.
            guard m.count > 1, m[1] & 0x80 != 0 else { return nil }
            body = m.dropFirst()
        }
        guard let top = body.first else { return nil }
        return (body.count - 1) * 8 + (8 - top.leadingZeroBitCount)
    }
}

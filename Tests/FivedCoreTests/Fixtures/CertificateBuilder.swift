@testable import FivedCore

/// Re-encodes a certificate field by field (PROTOCOL.certkeys), so that tests
/// can change one field of a real ssh-keygen certificate: the signature then no
/// longer matches, which is what parse-only tests need.
struct CertificateBuilder {
    var type: String
    var nonce: [UInt8]
    /// The certified key's fields, encoded, without its type string.
    var keyFields: [UInt8]
    var serial: UInt64
    var kind: UInt32
    var keyID: [UInt8]
    var principals: [[UInt8]]
    var validAfter: UInt64
    var validBefore: UInt64
    var critical: [(String, [UInt8])]
    var extensions: [(String, [UInt8])]
    var reserved: [UInt8] = []
    var signatureKey: [UInt8]
    var signature: [UInt8]
    var trailing: [UInt8] = []

    init(_ c: OpenSSHCertificate) {
        type = c.certificateType
        nonce = c.nonce
        var reader = WireReader(c.key.bytes)
        _ = reader.string()
        keyFields = Array(c.key.bytes[reader.offset...])
        serial = c.serial
        kind = c.kind.rawValue
        keyID = Array(c.keyID.utf8)
        principals = c.principals.map { Array($0.utf8) }
        validAfter = c.validAfter
        validBefore = c.validBefore
        critical = c.criticalOptions.map { ($0.name, $0.data) }
        extensions = c.extensions.map { ($0.name, $0.data) }
        reserved = c.reserved
        signatureKey = c.signatureKey.bytes
        signature = c.signature
    }

    static func uint64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

    static func options(_ list: [(String, [UInt8])]) -> [UInt8] {
        var w = WireWriter()
        for (name, data) in list {
            w.string(name)
            w.string(data)
        }
        return w.bytes
    }

    /// A string holding one string: how a valued option carries its value.
    static func value(_ text: String) -> [UInt8] {
        var w = WireWriter()
        w.string(text)
        return w.bytes
    }

    var signedBytes: [UInt8] {
        var w = WireWriter()
        w.string(type)
        w.string(nonce)
        var out = w.bytes + keyFields + Self.uint64(serial)
        w = WireWriter()
        w.uint32(kind)
        w.string(keyID)
        var packed = WireWriter()
        for p in principals { packed.string(p) }
        w.string(packed.bytes)
        out += w.bytes + Self.uint64(validAfter) + Self.uint64(validBefore)
        w = WireWriter()
        w.string(Self.options(critical))
        w.string(Self.options(extensions))
        w.string(reserved)
        w.string(signatureKey)
        return out + w.bytes
    }

    var bytes: [UInt8] {
        var w = WireWriter()
        w.string(signature)
        return signedBytes + w.bytes + trailing
    }
}

import Crypto
import Foundation
import _CryptoExtras

/// Verifies an SSH signature blob (RFC 4253 §6.6: `string algorithm, string
/// signature`) over some data with a plain public key, as OpenSSH's
/// `sshkey_verify` does for certificate signatures (sshkey.c `cert_parse`).
///
/// Algorithms accepted, sshd's default `CASignatureAlgorithms` (since OpenSSH
/// 8.2) less the security-key ones:
/// - `ssh-ed25519` (RFC 8709 §6): a 64-byte signature;
/// - `ecdsa-sha2-nistp256/384/521` (RFC 5656 §3.1.2): `mpint r, mpint s` inside
///   the signature string, hashed with SHA-256/384/512 by curve;
/// - `rsa-sha2-256`, `rsa-sha2-512` (RFC 8332 §3): PKCS #1 v1.5; a signature
///   shorter than the modulus is left-padded with zeros, as ssh-rsa.c does.
///
/// Refused: `ssh-rsa` (SHA-1, refused by sshd's default since 8.2), the
/// `sk-*` algorithms (a signature from a security key held by the CA), and
/// anything else. Nothing here traps on any input.
public enum SSHSignature {
    /// The signature algorithms fived accepts from a certificate authority.
    public static let certificateAuthorityAlgorithms = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "rsa-sha2-512", "rsa-sha2-256",
    ]

    /// Why a signature was not accepted (an `Error` only to be a `Result`'s failure).
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The blob does not parse (the phrase says where).
        case malformed(String)
        /// A well-formed signature of an algorithm fived refuses (`ssh-rsa`, `sk-*`, unknown).
        case algorithmNotAllowed(String)
        /// The signature's algorithm does not belong to the key's type.
        case wrongAlgorithm(signature: String, keyType: String)
        /// The key cannot be used for verification (e.g. an RSA exponent BoringSSL refuses).
        case unusableKey(String)
        /// Well formed, right algorithm, but the signature does not verify.
        case invalid(algorithm: String)

        public var description: String {
            switch self {
            case .malformed(let why): return "signature malformed: \(why)"
            case .algorithmNotAllowed(let name) where name == "ssh-rsa":
                return "signature algorithm ssh-rsa (RSA with SHA-1) is refused, as by sshd's default CASignatureAlgorithms; sign with -t rsa-sha2-512"
            case .algorithmNotAllowed(let name) where name.hasPrefix("sk-"):
                return "signature algorithm \(name) (a security-key CA) is not supported by fived"
            case .algorithmNotAllowed(let name): return "signature algorithm \(name) is not accepted"
            case .wrongAlgorithm(let sig, let key): return "a \(sig) signature cannot come from a \(key) key"
            case .unusableKey(let why): return "key unusable for verification: \(why)"
            case .invalid(let algorithm): return "\(algorithm) signature does not verify"
            }
        }
    }

    /// Checks `signature` (the whole blob) over `data` with `key`; returns the
    /// signature's algorithm name when it verifies.
    public static func verify(
        _ signature: [UInt8], over data: some DataProtocol, with key: PublicKeyBlob
    ) -> Result<String, Failure> {
        var reader = WireReader(signature)
        guard let nameBytes = reader.string(), !nameBytes.isEmpty, nameBytes.count <= 64,
            nameBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return .failure(.malformed("no algorithm name")) }
        let algorithm = String(decoding: nameBytes, as: UTF8.self)
        guard let raw = reader.string() else { return .failure(.malformed("no signature after \(algorithm)")) }
        guard certificateAuthorityAlgorithms.contains(algorithm) else {
            return .failure(.algorithmNotAllowed(algorithm))
        }
        guard reader.isAtEnd else { return .failure(.malformed("bytes after the \(algorithm) signature")) }
        let expected: [String]
        switch key.keyType {
        case "ssh-rsa": expected = ["rsa-sha2-256", "rsa-sha2-512"]
        default: expected = [key.keyType]
        }
        guard expected.contains(algorithm) else {
            return .failure(.wrongAlgorithm(signature: algorithm, keyType: key.keyType))
        }
        var keyReader = WireReader(key.bytes)
        _ = keyReader.string()  // the key type, validated by PublicKeyBlob
        let ok: Bool
        switch algorithm {
        case "ssh-ed25519":
            guard raw.count == 64 else { return .failure(.malformed("an Ed25519 signature is 64 bytes, not \(raw.count)")) }
            guard let point = keyReader.string(), let pk = try? Curve25519.Signing.PublicKey(rawRepresentation: point) else {
                return .failure(.unusableKey("Ed25519 point"))
            }
            ok = pk.isValidSignature(raw, for: data)
        case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521":
            _ = keyReader.string()  // curve name
            guard let point = keyReader.string() else { return .failure(.unusableKey("ECDSA point")) }
            let size = algorithm.hasSuffix("256") ? 32 : algorithm.hasSuffix("384") ? 48 : 66
            switch ecdsaRawSignature(raw, size: size) {
            case .failure(let f): return .failure(f)
            case .success(let rs):
                ok = ecdsaVerify(rs, data: data, point: point, size: size)
            }
        case "rsa-sha2-256", "rsa-sha2-512":
            guard let e = keyReader.string(), let n = keyReader.string() else { return .failure(.unusableKey("RSA fields")) }
            let modulus = Array(n.drop(while: { $0 == 0 }))
            let exponent = Array(e.drop(while: { $0 == 0 }))
            guard raw.count <= modulus.count else {
                return .failure(.malformed("RSA signature longer than the modulus"))
            }
            let padded = [UInt8](repeating: 0, count: modulus.count - raw.count) + raw
            let publicKey: _RSA.Signing.PublicKey
            do {
                publicKey = try _RSA.Signing.PublicKey(n: modulus, e: exponent)
            } catch {
                return .failure(.unusableKey("RSA key refused by BoringSSL"))
            }
            let sig = _RSA.Signing.RSASignature(rawRepresentation: padded)
            if algorithm == "rsa-sha2-256" {
                ok = publicKey.isValidSignature(sig, for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
            } else {
                ok = publicKey.isValidSignature(sig, for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
            }
        default:
            return .failure(.algorithmNotAllowed(algorithm))
        }
        return ok ? .success(algorithm) : .failure(.invalid(algorithm: algorithm))
    }

    /// `mpint r, mpint s` (RFC 5656 §3.1.2) as r‖s, each left-padded to `size`
    /// bytes. Leading zero bytes are tolerated (OpenSSH's `sshbuf_get_bignum2`
    /// strips them); negative numbers, numbers wider than the curve and
    /// trailing bytes are not.
    private static func ecdsaRawSignature(_ blob: [UInt8], size: Int) -> Result<[UInt8], Failure> {
        var reader = WireReader(blob)
        guard let r = reader.string(), let s = reader.string() else {
            return .failure(.malformed("ECDSA signature is not mpint r, mpint s"))
        }
        guard reader.isAtEnd else { return .failure(.malformed("bytes after the ECDSA mpint s")) }
        var out: [UInt8] = []
        for m in [r, s] {
            if let first = m.first, first & 0x80 != 0 { return .failure(.malformed("negative ECDSA mpint")) }
            let body = Array(m.drop(while: { $0 == 0 }))
            guard body.count <= size else { return .failure(.malformed("ECDSA mpint wider than the curve")) }
            out += [UInt8](repeating: 0, count: size - body.count) + body
        }
        return .success(out)
    }

    private static func ecdsaVerify(_ rs: [UInt8], data: some DataProtocol, point: [UInt8], size: Int) -> Bool {
        switch size {
        case 32:
            guard let key = try? P256.Signing.PublicKey(x963Representation: point),
                let sig = try? P256.Signing.ECDSASignature(rawRepresentation: rs)
            else { return false }
            return key.isValidSignature(sig, for: data)
        case 48:
            guard let key = try? P384.Signing.PublicKey(x963Representation: point),
                let sig = try? P384.Signing.ECDSASignature(rawRepresentation: rs)
            else { return false }
            return key.isValidSignature(sig, for: data)
        default:
            guard let key = try? P521.Signing.PublicKey(x963Representation: point),
                let sig = try? P521.Signing.ECDSASignature(rawRepresentation: rs)
            else { return false }
            return key.isValidSignature(sig, for: data)
        }
    }
}

import Crypto

/// An OpenSSH key revocation list (PROTOCOL.krl; krl.c `ssh_krl_from_blob`,
/// `ssh_krl_check_key`), as `ssh-keygen -k` writes it:
///
/// ```
/// uint64 "SSHKRL\n\0"   uint32 1 (format)   uint64 version   uint64 generated
/// uint64 flags   string reserved   string comment
/// then sections: byte type, string data
///   1 certificates: string CA key (empty: any CA), string reserved, then
///     subsections: byte type, string data
///       0x20 serial list (uint64...)    0x21 serial range (uint64 lo, uint64 hi)
///       0x22 serial bitmap (uint64 offset, mpint bits)   0x23 key IDs (string...)
///       0x39 extension (string name, bool critical, string data)
///   2 explicit keys (string blob...)   3 SHA-1 hashes   5 SHA-256 hashes
///   4 signature (string key, then string signature): skipped, as OpenSSH does
///   255 extension (string name, bool critical, string data)
/// ```
///
/// Parsing is as strict as krl.c: an unknown section type, a critical
/// extension, serial 0, a range with lo > hi, a bitmap that wraps past 2^64 or
/// is wider than OpenSSH's 2049-byte bignum limit, a hash of the wrong length,
/// or unparsed bytes in a section make the whole list unusable. Bitmaps are
/// kept as bytes, never expanded, so a list costs memory in proportion to its size.
public struct KeyRevocationList: Sendable, Equatable {
    /// The KRL's version number (`ssh-keygen -z`).
    public let version: UInt64
    /// When it was generated, seconds since the epoch.
    public let generatedDate: UInt64
    /// The KRL's comment.
    public let comment: String

    /// Certificate revocations for one CA (or for any CA).
    struct CertificateSection: Sendable, Equatable {
        var serials: Set<UInt64> = []
        var ranges: [ClosedRange<UInt64>] = []
        /// (offset, big-endian bitmap bytes without leading zeros): bit N of the
        /// number revokes serial offset + N.
        var bitmaps: [Bitmap] = []
        var keyIDs: Set<[UInt8]> = []

        struct Bitmap: Sendable, Equatable {
            var offset: UInt64
            var bytes: [UInt8]

            func contains(_ serial: UInt64) -> Bool {
                guard serial >= offset else { return false }
                let n = serial - offset
                guard n / 8 < UInt64(bytes.count) else { return false }
                let byte = bytes[bytes.count - 1 - Int(n / 8)]
                return byte >> (n % 8) & 1 == 1
            }
        }

        func revokes(serial: UInt64) -> Bool {
            serials.contains(serial) || ranges.contains { $0.contains(serial) } || bitmaps.contains { $0.contains(serial) }
        }
    }

    /// Certificate sections by CA key blob; the empty blob is "any CA".
    let certificates: [[UInt8]: CertificateSection]
    let explicitKeys: Set<[UInt8]>
    let sha1Hashes: Set<[UInt8]>
    let sha256Hashes: Set<[UInt8]>

    /// The first eight bytes of every KRL.
    public static let magic: [UInt8] = Array("SSHKRL\n".utf8) + [0]

    /// True when `contents` starts with the KRL magic, so that a `revoked_keys`
    /// file is read as a KRL rather than as a list of keys (authfile.c
    /// `sshkey_check_revoked`).
    public static func isKRL(_ contents: [UInt8]) -> Bool { contents.starts(with: magic) }

    /// OpenSSH's largest bignum (`SSHBUF_MAX_BIGNUM`, 2048 bytes) plus a leading zero.
    static let maximumBitmapLength = 2049

    /// Parses a KRL; `file` names it in errors (`revokedKeysMalformed`).
    public init(bytes: [UInt8], file: String) throws(FivedCoreError) {
        func malformed(_ why: String) -> FivedCoreError {
            FivedCoreError(.revokedKeysMalformed, "\(file): KRL \(why)")
        }
        guard Self.isKRL(bytes) else { throw malformed("does not start with SSHKRL") }
        var reader = WireReader(Array(bytes.dropFirst(Self.magic.count)))
        guard let format = reader.uint32() else { throw malformed("header is truncated") }
        guard format == 1 else { throw malformed("format version \(format) is not supported (only 1)") }
        guard let version = reader.uint64(), let generated = reader.uint64(), reader.uint64() != nil,
            reader.string() != nil, let comment = reader.cString()
        else { throw malformed("header is truncated") }

        var certificates: [[UInt8]: CertificateSection] = [:]
        var explicitKeys: Set<[UInt8]> = []
        var sha1: Set<[UInt8]> = []
        var sha256: Set<[UInt8]> = []
        var sectionIndex = 0
        while !reader.isAtEnd {
            sectionIndex += 1
            guard let type = reader.byte(), let data = reader.string() else {
                throw malformed("section \(sectionIndex) is truncated")
            }
            let name = "section \(sectionIndex)"
            switch type {
            case 1:
                try Self.parseCertificates(data, into: &certificates, malformed: { malformed("\(name) (certificates): \($0)") })
            case 2:
                try Self.blobs(data, length: nil, into: &explicitKeys, malformed: { malformed("\(name) (keys): \($0)") })
            case 3:
                try Self.blobs(data, length: 20, into: &sha1, malformed: { malformed("\(name) (SHA-1 hashes): \($0)") })
            case 5:
                try Self.blobs(data, length: 32, into: &sha256, malformed: { malformed("\(name) (SHA-256 hashes): \($0)") })
            case 4:
                // A signature section: the key was `data`, the signature follows.
                // OpenSSH no longer checks KRL signatures; skip it, staying in step.
                guard reader.string() != nil else { throw malformed("\(name) (signature) is truncated") }
            case 255:
                try Self.extensionSection(data, malformed: { malformed("\(name) (extension): \($0)") })
            default:
                throw malformed("\(name) has unknown type \(type)")
            }
        }
        self.version = version
        self.generatedDate = generated
        self.comment = String(decoding: comment, as: UTF8.self)
        self.certificates = certificates
        self.explicitKeys = explicitKeys
        self.sha1Hashes = sha1
        self.sha256Hashes = sha256
    }

    private static func parseCertificates(
        _ data: [UInt8], into certificates: inout [[UInt8]: CertificateSection], malformed: (String) -> FivedCoreError
    ) throws(FivedCoreError) {
        var reader = WireReader(data)
        guard let caKey = reader.string(), reader.string() != nil else { throw malformed("truncated CA key") }
        if !caKey.isEmpty {
            // A supported key must be canonical, or a byte comparison could miss
            // the certificate's CA; other types can never sign a certificate
            // fived accepts, so they are kept as they are.
            if case .failure(.malformed(let why)) = PublicKeyBlob.validate(caKey) { throw malformed("CA key: \(why)") }
        }
        var section = certificates[caKey] ?? CertificateSection()
        while !reader.isAtEnd {
            guard let type = reader.byte(), let sub = reader.string() else { throw malformed("truncated subsection") }
            var r = WireReader(sub)
            switch type {
            case 0x20:
                while !r.isAtEnd {
                    guard let serial = r.uint64() else { throw malformed("serial list is not a list of uint64") }
                    guard serial != 0 else { throw malformed("revokes serial 0") }
                    section.serials.insert(serial)
                }
            case 0x21:
                guard let lo = r.uint64(), let hi = r.uint64() else { throw malformed("truncated serial range") }
                guard lo != 0, lo <= hi else { throw malformed("serial range \(lo)-\(hi) is invalid") }
                section.ranges.append(lo...hi)
            case 0x22:
                guard let offset = r.uint64(), let mpint = r.string() else { throw malformed("truncated serial bitmap") }
                if let first = mpint.first, first & 0x80 != 0 { throw malformed("serial bitmap is negative") }
                guard mpint.count <= maximumBitmapLength, mpint.count < maximumBitmapLength || mpint.first == 0 else {
                    throw malformed("serial bitmap is wider than OpenSSH reads")
                }
                let bits = Array(mpint.drop(while: { $0 == 0 }))
                if let top = bits.first {
                    let width = UInt64((bits.count - 1) * 8 + (8 - top.leadingZeroBitCount))
                    guard offset <= UInt64.max - (width - 1) else { throw malformed("serial bitmap wraps past 2^64") }
                    guard offset != 0 || bits.last! & 1 == 0 else { throw malformed("revokes serial 0") }
                    section.bitmaps.append(CertificateSection.Bitmap(offset: offset, bytes: bits))
                }
            case 0x23:
                while !r.isAtEnd {
                    guard let id = r.cString() else { throw malformed("key ID list is malformed") }
                    section.keyIDs.insert(id)
                }
            case 0x39:
                try extensionSection(sub, malformed: malformed)
                r = WireReader([])
            default:
                throw malformed("unknown subsection type \(type)")
            }
            guard r.isAtEnd else { throw malformed("unparsed bytes in subsection type \(type)") }
        }
        certificates[caKey] = section
    }

    private static func blobs(
        _ data: [UInt8], length: Int?, into set: inout Set<[UInt8]>, malformed: (String) -> FivedCoreError
    ) throws(FivedCoreError) {
        var reader = WireReader(data)
        while !reader.isAtEnd {
            guard let blob = reader.string() else { throw malformed("truncated entry") }
            if let length, blob.count != length { throw malformed("an entry of \(blob.count) bytes, not \(length)") }
            set.insert(blob)
        }
    }

    /// `string name, boolean critical, string data`: no extension is known, so a
    /// critical one makes the list unusable (krl.c `extension_section`).
    private static func extensionSection(_ data: [UInt8], malformed: (String) -> FivedCoreError) throws(FivedCoreError) {
        var reader = WireReader(data)
        guard let name = reader.cString(), let critical = reader.byte(), reader.string() != nil, reader.isAtEnd else {
            throw malformed("malformed extension")
        }
        if critical != 0 {
            throw malformed("unsupported critical extension \(ServiceName.printable(String(decoding: name, as: UTF8.self)))")
        }
    }

    /// Whether a plain key is revoked, by hash or explicit blob (krl.c `is_key_revoked`).
    func match(_ key: PublicKeyBlob) -> Revocation.KeyMatch? {
        if sha1Hashes.contains(Array(Insecure.SHA1.hash(data: key.bytes))) { return .sha1 }
        if sha256Hashes.contains(Array(SHA256.hash(data: key.bytes))) { return .sha256 }
        if explicitKeys.contains(key.bytes) { return .key }
        return nil
    }

    /// Why `key` is revoked, or nil. `file` names this list in the answer.
    public func revocation(of key: PublicKeyBlob, file: String) -> Revocation? {
        match(key).map { .krlKey(fingerprint: key.fingerprint, match: $0, isCA: false, file: file) }
    }

    /// Why `certificate` is revoked, or nil, checking as `ssh_krl_check_key`
    /// does: its certified key; then its key ID and (non-zero) serial under its
    /// CA's sections and the any-CA sections; then the CA key itself.
    public func revocation(of certificate: OpenSSHCertificate, file: String) -> Revocation? {
        if let how = match(certificate.key) {
            return .krlKey(fingerprint: certificate.key.fingerprint, match: how, isCA: false, file: file)
        }
        let id = Array(certificate.keyID.utf8)
        for ca in [certificate.signatureKey.bytes, []] {
            guard let section = certificates[ca] else { continue }
            if section.keyIDs.contains(id) { return .krlKeyID(certificate.keyID, file: file) }
            if certificate.serial != 0, section.revokes(serial: certificate.serial) {
                return .krlSerial(certificate.serial, file: file)
            }
        }
        if let how = match(certificate.signatureKey) {
            return .krlKey(fingerprint: certificate.signatureKey.fingerprint, match: how, isCA: true, file: file)
        }
        return nil
    }
}

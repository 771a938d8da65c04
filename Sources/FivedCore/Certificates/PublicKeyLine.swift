/// One line of a plain public key list, as OpenSSH's `sshkey_in_file`
/// (authfile.c) reads `TrustedUserCAKeys` and text `RevokedKeys` files: blank
/// and `#` lines skipped, otherwise `TYPE BASE64 [COMMENT]` with no options.
enum PublicKeyLine {
    /// The longest line read, in bytes: a certificate line of the largest blob
    /// `OpenSSHCertificate` accepts, in base64, with room for a comment.
    static let maximumLength = 100_000

    /// A key line's parts.
    struct Fields {
        /// The first field, e.g. `ssh-ed25519`.
        var type: String
        /// The decoded second field; its leading SSH string is `type`.
        var blob: [UInt8]
        /// The rest of the line, trailing blanks removed.
        var comment: String
    }

    /// nil for a blank or comment line; the fields of a key line; an error
    /// starting with `context` (`FILE:LINE`) otherwise.
    static func parse(_ line: some Collection<UInt8>, context: String, code: FivedCoreError.Code) -> Result<Fields?, FivedCoreError> {
        func failure(_ why: String) -> Result<Fields?, FivedCoreError> { .failure(FivedCoreError(code, "\(context): \(why)")) }
        guard line.count <= maximumLength + 1 else { return failure("line longer than \(maximumLength) bytes") }
        var bytes = Array(line)
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard !bytes.contains(0) else { return failure("line contains a NUL byte") }
        let isBlank = { (b: UInt8) in b == 0x20 || b == 0x09 }
        var i = 0
        while i < bytes.count, isBlank(bytes[i]) { i += 1 }
        guard i < bytes.count, bytes[i] != UInt8(ascii: "#") else { return .success(nil) }
        func token() -> [UInt8] {
            let start = i
            while i < bytes.count, !isBlank(bytes[i]) { i += 1 }
            let t = Array(bytes[start..<i])
            while i < bytes.count, isBlank(bytes[i]) { i += 1 }
            return t
        }
        let type = String(decoding: token(), as: UTF8.self)
        let base64 = token()
        guard !base64.isEmpty else {
            return failure("'\(ServiceName.printable(type))' is not followed by a key (expected TYPE BASE64 [COMMENT], no options)")
        }
        guard let blob = Base64.decode(String(decoding: base64, as: UTF8.self)) else {
            return failure("the key after '\(ServiceName.printable(type))' is not valid base64 (options are not allowed here)")
        }
        var reader = WireReader(blob)
        guard let inner = reader.string(), inner.elementsEqual(type.utf8) else {
            return failure("the key is not of type \(ServiceName.printable(type)) as the line says")
        }
        let rest = bytes[i...].reversed().drop(while: isBlank).reversed()
        return .success(Fields(type: type, blob: blob, comment: String(decoding: rest, as: UTF8.self)))
    }

    /// Splits file contents into lines at LF (a CR before it is dropped by `parse`).
    static func lines(_ contents: [UInt8]) -> [ArraySlice<UInt8>] {
        contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    }
}

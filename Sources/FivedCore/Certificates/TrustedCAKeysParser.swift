/// Reads `trusted_user_ca_keys` files, as sshd reads `TrustedUserCAKeys`
/// (auth2-pubkey.c `user_cert_trusted_ca` via authfile.c `sshkey_in_file`):
/// one CA public key per line, `TYPE BASE64 [COMMENT]`, no options; blank and
/// `#` lines ignored. A CA listed here signs user certificates for every user,
/// subject to `authorized_principals_file` (or, without one, to the SSH user
/// name being a principal of the certificate).
public enum TrustedCAKeysParser {
    /// Parses one file: the CA keys in file order (as `AuthorizedKey` values with
    /// no options, so that a CA line has a comment and a `FILE:LINE`), and one
    /// problem per line that is not a plain public key of a type fived supports.
    public static func parseFile(_ contents: [UInt8], path: String) -> (keys: [AuthorizedKey], problems: [FivedCoreError]) {
        var keys: [AuthorizedKey] = []
        var problems: [FivedCoreError] = []
        for (index, line) in PublicKeyLine.lines(contents).enumerated() {
            let context = "\(path):\(index + 1)"
            switch PublicKeyLine.parse(line, context: context, code: .trustedCAKeyMalformed) {
            case .success(nil): continue
            case .failure(let e): problems.append(e)
            case .success(let fields?):
                switch PublicKeyBlob.validate(fields.blob) {
                case .success(let blob):
                    keys.append(AuthorizedKey(blob: blob, comment: fields.comment, options: KeyOptions(), file: path, line: index + 1))
                case .failure(.unsupportedType(let t)) where OpenSSHCertificate.isCertificateType(t):
                    problems.append(FivedCoreError(.trustedCAKeyMalformed, "\(context): a certificate cannot be a CA key (list the CA's plain public key)"))
                case .failure(.unsupportedType(let t)):
                    problems.append(FivedCoreError(.trustedCAKeyMalformed, "\(context): CA key type \(ServiceName.printable(t)) is not supported"))
                case .failure(.malformed(let why)):
                    problems.append(FivedCoreError(.trustedCAKeyMalformed, "\(context): \(why)"))
                }
            }
        }
        return (keys, problems)
    }
}

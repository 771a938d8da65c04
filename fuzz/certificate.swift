// libFuzzer harness: OpenSSH certificate blobs as a client presents them in
// public key authentication (OpenSSHCertificate), the CA signature check
// (SSHSignature), the options (CertificateRestrictions) and the whole decision
// (CertificateCheck) against a cert-authority line for the blob's own CA.
// Attacker input: any client sends these before authenticating.
// Built and run by fuzz/run.sh.
import FivedCore

private let revoked = RevokedKeys(contents: Array("# nothing\n".utf8), path: "fuzz")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCertificate(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let first = Result { () throws(FivedCoreError) in try OpenSSHCertificate(bytes: bytes, context: "fuzz") }
    let again = Result { () throws(FivedCoreError) in try OpenSSHCertificate(bytes: bytes, context: "fuzz") }
    switch (first, again) {
    case (.failure(let a), .failure(let b)):
        precondition(a == b, "parse errors differ")
        precondition(!a.message.contains("\n"), "an error message must stay one line")
        return 0
    case (.success(let a), .success(let b)):
        precondition(a == b, "parse is not deterministic")
    default:
        preconditionFailure("parse is not deterministic")
    }
    guard case .success(let cert) = first else { return 0 }
    precondition(cert.signedLength > 0 && cert.signedLength < bytes.count, "signed part out of range")
    precondition(cert.principals.count <= OpenSSHCertificate.maximumPrincipals)
    precondition(cert.key.fingerprint.hasPrefix("SHA256:") && cert.caFingerprint.hasPrefix("SHA256:"))
    precondition(!cert.description.contains("\n"))
    let verified = cert.verifySignature()
    precondition(verified == cert.verifySignature(), "verification is not deterministic")

    var options = KeyOptions()
    options.certAuthority = true
    let line = AuthorizedKey(blob: cert.signatureKey, comment: "ca", options: options, file: "fuzz", line: 1)
    let user = cert.principals.first ?? "alice"
    for address in ["192.0.2.7", "2001:db8::1", "not an address"] {
        for now: Int64 in [-1, 0, 1_800_000_000, Int64.max] {
            let request = CertificateCheck.Request(
                certificate: cert, user: user, clientAddress: address, now: now,
                authorizedKeys: [line], trustedCAKeys: [line], revokedKeys: [revoked], securityKeyFlags: UInt8(truncatingIfNeeded: size))
            let decision = CertificateCheck.check(request)
            precondition(!decision.description.contains("\n"), "a decision must log as one line")
            if case .accepted(let acceptance) = decision {
                // nothing is accepted that a fresh look refuses
                guard case .success = verified, cert.kind == .user else { preconditionFailure("accepted a certificate that does not verify") }
                precondition(acceptance.key.blob == cert.key)
            }
        }
    }
    return 0
}

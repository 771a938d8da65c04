/// One step of fived-connect's public key authentication. `order` arranges the
/// steps as OpenSSH 9.2 arranges what ssh offers (sshconnect2.c `pubkey_prepare`;
/// ssh.c `load_public_identity_files` for the certificates beside identity
/// files), within what libssh 0.10.6's client API allows:
///
/// 1. each CertificateFile, signed by the identity file whose key it certifies
///    (ssh puts "certificates specified by user" first in its preferred list);
/// 2. every identity ssh-agent holds, certificates included, in the agent's
///    order (`ssh_userauth_agent` cannot be asked for one key; ssh would try
///    the agent keys that match identity files first);
/// 3. each identity file's key, then its `FILE-cert.pub`, but only while no
///    CertificateFile is given ("If no certificates have been explicitly
///    listed then try to add the default certificate variant too").
public enum PublicKeyOffer: Sendable, Equatable {
    /// A CertificateFile (as given; `ClientCertificate.candidates` says which
    /// files it may name).
    case certificateFile(String)
    /// Every key and certificate ssh-agent holds.
    case agent
    /// An identity file's private key.
    case identityFile(String)
    /// The certificate beside an identity file (`FILE-cert`, or `FILE-cert.pub`),
    /// signed by that file's key.
    case identityCertificate(key: String, certificate: String)

    /// The steps for these files, in order.
    public static func order(identityFiles: [String], certificateFiles: [String], useAgent: Bool) -> [PublicKeyOffer] {
        var steps = certificateFiles.map { PublicKeyOffer.certificateFile($0) }
        if useAgent { steps.append(.agent) }
        for file in identityFiles {
            steps.append(.identityFile(file))
            if certificateFiles.isEmpty { steps.append(.identityCertificate(key: file, certificate: file + "-cert")) }
        }
        return steps
    }
}

/// A user certificate read from a file on the client side (a CertificateFile or
/// the `-cert.pub` beside an identity file), with what fived-connect tells the
/// user about it. The server decides whether it admits the certificate;
/// fived-connect, like ssh, offers an expired one all the same.
public struct ClientCertificate: Sendable, Equatable {
    /// The file it was read from.
    public let path: String
    public let certificate: OpenSSHCertificate

    /// The files a certificate path may name, in the order ssh tries them
    /// (authfile.c `sshkey_load_public`: the name itself, then NAME.pub).
    public static func candidates(for path: String) -> [String] {
        path.hasSuffix(".pub") ? [path] : [path, path + ".pub"]
    }

    /// Parses a certificate file's text: the first line that is not blank or a
    /// `#` comment, `TYPE BASE64 [COMMENT]`. Throws for a plain key, a host
    /// certificate (ssh: "not a user certificate") or a malformed certificate,
    /// naming `path:line`.
    public init(text: String, path: String) throws(FivedCoreError) {
        var number = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let line = raw.drop(while: { $0 == " " || $0 == "\t" })
            if line.isEmpty || line.hasPrefix("#") { continue }
            let context = "\(path):\(number)"
            let type = line.prefix(while: { $0 != " " && $0 != "\t" })
            guard OpenSSHCertificate.isCertificateType(type) else {
                throw FivedCoreError(.certificateMalformed, "\(context): \(ServiceName.printable(String(type))) is a plain key, not a certificate")
            }
            let certificate = try OpenSSHCertificate(line: line, context: context)
            guard certificate.kind == .user else {
                throw FivedCoreError(.certificateMalformed, "\(context): a host certificate, not a user certificate")
            }
            self.path = path
            self.certificate = certificate
            return
        }
        throw FivedCoreError(.certificateMalformed, "\(path): no certificate in the file")
    }

    /// True when the certificate certifies the key with this public blob (a
    /// plain key's; libssh's `ssh_pki_copy_cert_to_privkey` does not check it).
    public func certifies(publicBlob: [UInt8]) -> Bool {
        certificate.key.bytes == publicBlob
    }

    /// Why the server will refuse it by the clock (`expired at ...`, `not valid
    /// before ...`), or nil while it is valid at `now` (seconds since the epoch).
    public func validityProblem(now: Int64) -> String? {
        let now = UInt64(max(now, 0))
        if now < certificate.validAfter { return "not valid before \(CertificateTime.format(certificate.validAfter))" }
        if now >= certificate.validBefore { return "expired at \(CertificateTime.format(certificate.validBefore))" }
        return nil
    }

    /// `certificate PATH (ID "KEY-ID", serial N)`, for messages.
    public var shown: String {
        "certificate \(path) (ID \"\(ServiceName.printable(certificate.keyID))\", serial \(certificate.serial))"
    }
}

import CLibSSH
import Foundation

/// An SSH key (public or private), owning its `ssh_key`.
public final class SSHKey: @unchecked Sendable {
    /// The key algorithms fived knows by name.
    public enum Kind: Sendable {
        case ed25519, ecdsa256, ecdsa384, ecdsa521, rsa, other(String)
    }

    let key: ssh_key

    init(owning key: ssh_key) {
        self.key = key
    }

    deinit {
        ssh_key_free(key)
    }

    /// Lends the raw handle for the duration of `body`; it must not escape.
    public func withPointer<T>(_ body: (ssh_key) throws -> T) rethrows -> T {
        try body(key)
    }

    /// Generates a fresh Ed25519 private key.
    public static func generateEd25519() throws(LibSSHError) -> SSHKey {
        var out: ssh_key?
        guard ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &out) == SSH_OK, let out else {
            throw LibSSHError(.keyGenerate, "could not generate an Ed25519 key")
        }
        return SSHKey(owning: out)
    }

    /// Imports an unencrypted private key file (OpenSSH or PEM format).
    public static func importPrivateKey(path: String) throws(LibSSHError) -> SSHKey {
        var out: ssh_key?
        let rc = ssh_pki_import_privkey_file(path, nil, nil, nil, &out)
        guard rc == SSH_OK, let out else {
            throw LibSSHError(.keyImport, "\(path): not a readable, unencrypted private key")
        }
        return SSHKey(owning: out)
    }

    /// Imports an OpenSSH certificate file (`TYPE-cert-v01@openssh.com BASE64 [COMMENT]`,
    /// a `-cert.pub` file) with `ssh_pki_import_cert_file`. libssh parses only the
    /// certified key's fields and keeps the rest of the blob as it is (pki.c
    /// `pki_import_cert_buffer`); FivedCore's `ClientCertificate` reads the rest.
    public static func importCertificate(path: String) throws(LibSSHError) -> SSHKey {
        var out: ssh_key?
        guard ssh_pki_import_cert_file(path, &out) == SSH_OK, let out else {
            throw LibSSHError(.keyImport, "\(path): not a readable certificate")
        }
        guard ssh_key_is_public(out) == 1, let name = ssh_key_type_to_char(ssh_key_type(out)),
            String(cString: name).hasSuffix("-cert-v01@openssh.com")
        else {
            ssh_key_free(out)
            throw LibSSHError(.keyImport, "\(path): not a certificate")
        }
        return SSHKey(owning: out)
    }

    /// Attaches `certificate` to this private key (`ssh_pki_copy_cert_to_privkey`),
    /// so that authenticating with it presents the certificate. libssh checks
    /// neither that the certificate certifies this key nor its type
    /// (pki.c:2240-2269): the caller must (`ClientCertificate.certifies`). A key
    /// takes one certificate; import the key again for another.
    public func attach(certificate: SSHKey) throws(LibSSHError) {
        guard ssh_pki_copy_cert_to_privkey(certificate.key, key) == SSH_OK else {
            throw LibSSHError(.keyImport, "could not attach the certificate to the key (one is attached already, or it is not a certificate)")
        }
    }

    /// The private key in OpenSSH's text format, for writing to a 0600 file.
    public func exportPrivateOpenSSH() throws(LibSSHError) -> String {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_privkey_base64(key, nil, nil, nil, &b64) == SSH_OK, let b64 else {
            throw LibSSHError(.keyExport, "could not export the private key")
        }
        defer { ssh_string_free_char(b64) }
        return String(cString: b64)
    }

    /// A new key holding only the public half.
    public func publicKey() throws(LibSSHError) -> SSHKey {
        var out: ssh_key?
        guard ssh_pki_export_privkey_to_pubkey(key, &out) == SSH_OK, let out else {
            throw LibSSHError(.keyExport, "could not derive the public key")
        }
        return SSHKey(owning: out)
    }

    /// A duplicate that libssh may take ownership of (see `SSHBind.addHostKey`).
    /// An independent copy (ssh_key_dup), for use on another thread.
    public func copy() throws(LibSSHError) -> SSHKey {
        SSHKey(owning: try duplicate())
    }

    func duplicate() throws(LibSSHError) -> ssh_key {
        guard let copy = ssh_key_dup(key) else {
            throw LibSSHError(.allocation, "could not duplicate a key")
        }
        return copy
    }

    /// The public key blob (the SSH wire encoding), as authorized_keys carries it in base64.
    public func publicBlobBase64() throws(LibSSHError) -> String {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else {
            throw LibSSHError(.keyExport, "could not export the public key")
        }
        defer { ssh_string_free_char(b64) }
        return String(cString: b64)
    }

    /// The public key blob as bytes.
    public func publicBlob() throws(LibSSHError) -> [UInt8] {
        let b64 = try publicBlobBase64()
        guard let data = Data(base64Encoded: b64) else {
            throw LibSSHError(.keyExport, "libssh exported an invalid base64 key")
        }
        return [UInt8](data)
    }

    /// The key's algorithm name as SSH writes it ("ssh-ed25519", "ssh-rsa", ...).
    public var typeName: String {
        guard let name = ssh_key_type_to_char(ssh_key_type(key)) else { return "unknown" }
        return String(cString: name)
    }

    /// The `authorized_keys`-style line for the public half: "TYPE BASE64".
    public func publicLine() throws(LibSSHError) -> String {
        "\(typeName) \(try publicBlobBase64())"
    }
}

/// A key lent by libssh for the duration of a callback; it does not own the handle.
public struct BorrowedSSHKey {
    let key: ssh_key

    /// The public key blob (SSH wire encoding).
    public func publicBlob() -> [UInt8]? {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else { return nil }
        defer { ssh_string_free_char(b64) }
        guard let data = Data(base64Encoded: String(cString: b64)) else { return nil }
        return [UInt8](data)
    }
}

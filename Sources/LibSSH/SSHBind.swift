import CLibSSH

/// The server-side template every accepted session is made from: host keys and
/// algorithm policy. fived accepts sockets itself and hands them to `accept(fd:)`,
/// so the bind never listens.
public final class SSHBind: @unchecked Sendable {
    let bind: ssh_bind

    /// Creates a bind that ignores /etc/ssh/libssh_server_config (LIBSSH-NOTES: bind.c:441)
    /// and refuses SHA-1 `ssh-rsa` signatures.
    public init() throws(LibSSHError) {
        guard let b = ssh_bind_new() else {
            throw LibSSHError(.allocation, "could not allocate an SSH bind")
        }
        bind = b
        var no: CBool = false
        guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) == SSH_OK else {
            throw LibSSHError(.option, "could not disable libssh's global server config: \(lastError(UnsafeMutableRawPointer(bind)))")
        }
        // Public-key algorithms accepted for user authentication: no SHA-1 RSA.
        let accepted = [
            "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
            "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
            "rsa-sha2-512", "rsa-sha2-256",
        ].joined(separator: ",")
        guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PUBKEY_ACCEPTED_KEY_TYPES, accepted) == SSH_OK else {
            throw LibSSHError(.option, "could not set accepted public key types: \(lastError(UnsafeMutableRawPointer(bind)))")
        }
    }

    deinit {
        ssh_bind_free(bind)
    }

    /// Sets what follows `SSH-2.0-` in the server's identification line
    /// (SSH_BIND_OPTIONS_BANNER; libssh prints `SSH-2.0-%s`, client.c
    /// `ssh_send_banner`). At most 200 printable ASCII characters, no CR or LF.
    public func setIdentification(_ text: String) throws(LibSSHError) {
        guard !text.isEmpty, text.utf8.count <= 200, text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw LibSSHError(.option, "an SSH identification must be 1 to 200 printable ASCII characters")
        }
        guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BANNER, text) == SSH_OK else {
            throw LibSSHError(.option, "could not set the SSH identification: \(lastError(UnsafeMutableRawPointer(bind)))")
        }
    }

    /// Adds a host key; libssh keeps its own copy.
    public func addHostKey(_ key: SSHKey) throws(LibSSHError) {
        let copy = try key.duplicate()
        // SSH_BIND_OPTIONS_IMPORT_KEY takes ownership of `copy` on success.
        guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, UnsafeRawPointer(copy)) == SSH_OK else {
            ssh_key_free(copy)
            throw LibSSHError(.hostKey, "libssh refused a host key: \(lastError(UnsafeMutableRawPointer(bind)))")
        }
    }

    /// Why `accept(fd:)` failed, and whether libssh had already taken the socket
    /// (then it is closed with the failed session, and the caller must not close it).
    public struct AcceptFailure: Error, Sendable {
        public let message: String
        public let socketTaken: Bool
    }

    /// Wraps an accepted, connected socket in a new server session. The session
    /// owns `fd` from here on (ssh_free closes it).
    public func accept(fd: Int32) throws(AcceptFailure) -> SSHSession {
        guard let raw = ssh_new() else {
            throw AcceptFailure(message: "could not allocate an SSH session", socketTaken: false)
        }
        let session = SSHSession(owning: raw)
        guard ssh_bind_accept_fd(bind, raw, fd) == SSH_OK else {
            // ssh_bind_accept_fd hands the descriptor to the session part-way
            // through (bind.c: ssh_socket_set_fd); ask the session whether it has it.
            throw AcceptFailure(
                message: "could not set up the SSH session: \(lastError(UnsafeMutableRawPointer(bind)))",
                socketTaken: ssh_get_fd(raw) == fd)
        }
        return session
    }
}

import CLibSSH

/// A client session driven by someone else's event loop (fived's node-to-node
/// connections run inside a worker's epoll loop): every call returns at once,
/// and is called again when the socket is ready, until it says it is done.
extension SSHClient {
    /// Uses `fd`, a connected TCP socket in blocking mode (libssh treats EAGAIN
    /// on its socket as fatal; it only writes after polling), instead of
    /// connecting itself. libssh owns and closes it from here.
    public func useConnectedSocket(_ fd: Int32) throws(LibSSHError) {
        var value = fd
        let rc = session.withPointer { ssh_options_set($0, SSH_OPTIONS_FD, &value) }
        guard rc == SSH_OK else {
            throw LibSSHError(.option, "could not hand socket \(fd) to libssh: \(session.lastErrorText)")
        }
    }

    /// One step of the key exchange on a non-blocking session: true once it has
    /// finished, false while it needs more from the server.
    public func connectStep() throws(LibSSHError) -> Bool {
        let rc = session.withPointer { ssh_connect($0) }
        if rc == SSH_OK { return true }
        if rc == SSH_AGAIN { return false }
        throw LibSSHError(.connect, session.lastErrorText)
    }

    /// One step of public-key authentication with `key` on a non-blocking
    /// session: nil while the answer is pending (call again with the same key).
    public func authenticateStep(with key: SSHKey) -> SSHAuthResult? {
        let rc = key.withPointer { pointer in session.withPointer { ssh_userauth_publickey($0, nil, pointer) } }
        switch rc {
        case Int32(SSH_AUTH_SUCCESS.rawValue): return .success
        case Int32(SSH_AUTH_DENIED.rawValue): return .denied
        case Int32(SSH_AUTH_PARTIAL.rawValue): return .partial
        case Int32(SSH_AUTH_AGAIN.rawValue): return nil
        default: return .error(session.lastErrorText)
        }
    }
}

extension SSHClient {
    /// The server's host key as its SSH wire blob, or nil before the key exchange.
    public func serverKeyBlob() -> [UInt8]? {
        var key: ssh_key?
        guard session.withPointer({ ssh_get_server_publickey($0, &key) }) == SSH_OK, let key else { return nil }
        return try? SSHKey(owning: key).publicBlob()
    }
}

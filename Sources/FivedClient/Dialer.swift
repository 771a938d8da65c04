import FivedCore
import FivedSystem
import Foundation
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// Opens one authenticated SSH connection to a fived host: TCP connect and key
/// exchange, the known_hosts decision, then public-key authentication (agent,
/// then identity files). Blocking, bounded by ConnectTimeout per step.
public struct Dialer: Sendable {
    public let options: ClientOptions
    public let home: String
    public let diagnostics: Diagnostics

    public init(options: ClientOptions, home: String, diagnostics: Diagnostics) {
        self.options = options
        self.home = home
        self.diagnostics = diagnostics
    }

    /// The destination as messages show it: `host port N`, or the alias and address.
    var shownHost: String {
        let host = options.alias == options.hostName ? options.hostName : "\(options.alias) (\(options.hostName))"
        return "\(host) port \(options.port)"
    }

    func dial() throws(ConnectFailure) -> SSHClient {
        let client: SSHClient
        do {
            client = try SSHClient()
            try client.setHost(options.hostName)
            try client.setPort(options.port)
            try client.setUser(options.user)
            try client.setSSHDirectory("\(home)/.ssh")
            try client.setKnownHostsFile(options.knownHostsFile)
            try client.setTimeout(seconds: options.connectTimeout)
        } catch {
            throw .connection("\(shownHost): \(error.message)")
        }
        diagnostics.debug("connecting to \(shownHost) as \(options.user)")
        do {
            try client.connect()
        } catch {
            throw .connection("cannot connect to \(shownHost): \(Self.tidy(error.message))")
        }
        try verifyHostKey(client)
        try authenticate(client)
        tuneSocket(client)
        return client
    }

    /// libssh's texts carry prefixes that mean nothing to a user.
    static func tidy(_ text: String) -> String {
        var t = text
        for prefix in ["Failed to connect: ", "Connection failed: "] where t.hasPrefix(prefix) { t.removeFirst(prefix.count) }
        return t
    }

    private func verifyHostKey(_ client: SSHClient) throws(ConnectFailure) {
        guard let key = client.serverKey() else {
            throw .connection("\(shownHost): the server sent no host key")
        }
        let name = options.knownHostsName
        let file = options.knownHostsFile
        diagnostics.debug("server host key \(key.type) \(key.fingerprint)")
        let verdict: SSHHostKeyVerdict
        do {
            verdict = try client.checkServerKey()
        } catch {
            throw .connection("\(shownHost): \(error.message)")
        }
        switch verdict {
        case .known:
            diagnostics.debug("host key found in \(file)")
        case .unknown:
            switch options.strictHostKeyChecking {
            case .yes:
                throw ConnectFailure(kind: .hostKeyUnknown, message: "host key for \(name) is not known (\(key.type) \(key.fingerprint)); "
                    + "if that fingerprint is right, run once with -o StrictHostKeyChecking=accept-new to record it in \(file)")
            case .acceptNew, .no:
                makeParentDirectory(of: file)
                do {
                    try client.recordServerKey()
                } catch {
                    throw .connection("\(shownHost): \(error.message)")
                }
                diagnostics.warning("permanently added '\(name)' (\(key.type) \(key.fingerprint)) to \(file)")
            }
        case .changed, .otherType:
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            let recorded = KnownHostsFile.entries(in: text, hostName: options.hostName, port: options.port)
                .map { "\(file):\($0.line) has \($0.keyType) \($0.fingerprint ?? "(unreadable key)")" }
                .joined(separator: ", ")
            throw ConnectFailure(kind: .hostKeyChanged, message: "HOST KEY FOR \(name) HAS CHANGED: the server offers \(key.type) \(key.fingerprint) but "
                + "\(recorded.isEmpty ? "\(file) records another key" : recorded); "
                + "refusing to connect; if the change is expected, remove the old key with: ssh-keygen -R '\(name)' -f \(file)")
        }
    }

    private func makeParentDirectory(of path: String) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let dir = String(path[..<slash])
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    private func authenticate(_ client: SSHClient) throws(ConnectFailure) {
        var tried: [String] = []
        switch client.authenticateNone() {
        case .success:
            diagnostics.debug("authenticated without a key")
            return
        case .error(let text):
            throw .connection("\(shownHost): authentication failed: \(text)")
        case .denied, .partial:
            break
        }
        if !options.identitiesOnly, let sock = ProcessInfo.processInfo.environment["SSH_AUTH_SOCK"], !sock.isEmpty {
            tried.append("ssh-agent")
            if try accepted(client.authenticateWithAgent(), by: "a key from ssh-agent", client) { return }
        }
        for path in options.identityFiles {
            guard access(path, F_OK) == 0 else {
                if !path.hasSuffix("/.ssh/id_ed25519") && !path.hasSuffix("/.ssh/id_ecdsa") && !path.hasSuffix("/.ssh/id_rsa") {
                    diagnostics.warning("identity file \(path) does not exist")
                }
                continue
            }
            let key: SSHKey
            do {
                key = try SSHKey.importPrivateKey(path: path)
            } catch {
                diagnostics.warning("skipping \(path): not readable, or protected by a passphrase (load it into ssh-agent instead)")
                continue
            }
            tried.append(path)
            if try accepted(client.authenticate(with: key), by: path, client) { return }
        }
        let what = tried.isEmpty ? "no key to offer: no ssh-agent (SSH_AUTH_SOCK) and no identity file found" : "tried \(tried.joined(separator: ", "))"
        throw .connection("\(options.user)@\(shownHost): permission denied (\(what))")
    }

    /// True when `result` logged the client in; otherwise says why (with -v) and
    /// fails when the server closed the connection meanwhile.
    private func accepted(_ result: SSHAuthResult, by what: String, _ client: SSHClient) throws(ConnectFailure) -> Bool {
        switch result {
        case .success:
            diagnostics.debug("authenticated with \(what)")
            return true
        case .error(let text):
            diagnostics.debug("\(what): \(text)")
        case .denied, .partial:
            diagnostics.debug("\(what) was not accepted")
        }
        guard client.isConnected else {
            throw .connection("\(shownHost): connection closed during authentication")
        }
        return false
    }

    /// TCP keepalive and a user timeout so a dead server shows up as an error
    /// within ServerAliveInterval × ServerAliveCountMax seconds.
    private func tuneSocket(_ client: SSHClient) {
        let fd = client.fileDescriptor
        guard fd >= 0 else { return }
        Socket.setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1)
        Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        if options.serverAliveInterval > 0 {
            let ms = options.serverAliveInterval * options.serverAliveCountMax * 1000
            Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, Int32(clamping: ms))
            Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, Int32(options.serverAliveInterval))
            Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, Int32(options.serverAliveInterval))
            Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, Int32(options.serverAliveCountMax))
        }
    }
}

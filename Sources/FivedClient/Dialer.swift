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
            try client.setGlobalKnownHostsFile(options.globalKnownHostsFile)
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

    /// The known_hosts decision (`HostKeyCheck`, from fived-connect's own
    /// reading of UserKnownHostsFile and GlobalKnownHostsFile, markers included);
    /// libssh's verdict, which skips marker lines, is shown with -v when it differs.
    private func verifyHostKey(_ client: SSHClient) throws(ConnectFailure) {
        guard let key = client.serverKey() else {
            throw .connection("\(shownHost): the server sent no host key")
        }
        diagnostics.debug("server host key \(key.type) \(key.fingerprint)")
        let files = [options.knownHostsFile, options.globalKnownHostsFile].map {
            HostKeyCheck.File(path: $0, text: (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "")
        }
        let check = HostKeyCheck(
            name: options.knownHostsName, hostName: options.hostName, port: options.port,
            offered: HostKeyCheck.OfferedKey(type: key.type, fingerprint: key.fingerprint, blob: key.blob),
            files: files, strict: options.strictHostKeyChecking)
        let outcome = check.decide()
        if diagnostics.verbosity >= 1, let verdict = try? client.checkServerKey() {
            let agrees = Self.libssh(verdict, agreesWith: outcome)
            if !agrees {
                diagnostics.debug("libssh reads known_hosts as '\(verdict)' here (it skips @ marker lines and ! negation); fived-connect's reading decides")
            }
        }
        switch outcome {
        case .known(let place):
            diagnostics.debug("host key found at \(place)")
        case .record(let note):
            makeParentDirectory(of: options.knownHostsFile)
            do {
                try client.recordServerKey()
            } catch {
                throw .connection("\(shownHost): \(error.message)")
            }
            diagnostics.warning(note)
        case .refuse(let refusal):
            let kind: ConnectFailure.Kind
            switch refusal.kind {
            case .unknown, .certificateAuthorityOnly: kind = .hostKeyUnknown
            case .changed: kind = .hostKeyChanged
            case .revoked: kind = .hostKeyRevoked
            }
            throw ConnectFailure(kind: kind, message: refusal.message)
        }
    }

    /// True when libssh's `ssh_session_is_known_server` says what `outcome`
    /// says about the plain lines (libssh knows nothing of revocation).
    static func libssh(_ verdict: SSHHostKeyVerdict, agreesWith outcome: HostKeyCheck.Outcome) -> Bool {
        switch outcome {
        case .known: return verdict == .known
        case .record: return verdict == .unknown
        case .refuse(let refusal):
            switch refusal.kind {
            case .changed: return verdict == .changed || verdict == .otherType
            case .unknown, .certificateAuthorityOnly: return verdict == .unknown
            case .revoked: return true
            }
        }
    }

    private func makeParentDirectory(of path: String) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let dir = String(path[..<slash])
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// Public key authentication, after "none", in `PublicKeyOffer.order`:
    /// CertificateFiles, ssh-agent (its certificates included), then each
    /// identity file and the certificate beside it.
    private func authenticate(_ client: SSHClient) throws(ConnectFailure) {
        switch client.authenticateNone() {
        case .success:
            diagnostics.debug("authenticated without a key")
            return
        case .error(let text):
            throw .connection("\(shownHost): authentication failed: \(text)")
        case .denied, .partial:
            break
        }
        let agentSocket = ProcessInfo.processInfo.environment["SSH_AUTH_SOCK"] ?? ""
        let offers = PublicKeyOffer.order(
            identityFiles: options.identityFiles, certificateFiles: options.certificateFiles,
            useAgent: !options.identitiesOnly && !agentSocket.isEmpty)
        let keys = IdentityKeys(diagnostics: diagnostics)
        var tried: [String] = []
        for offer in offers {
            switch offer {
            case .agent:
                tried.append("ssh-agent")
                if try accepted(client.authenticateWithAgent(), by: "a key from ssh-agent", client) { return }
            case .identityFile(let path):
                guard let key = keys.privateKey(path, reportMissing: !ClientOptions.isDefaultIdentity(path)) else { continue }
                tried.append(path)
                if try accepted(client.authenticate(with: key), by: path, client) { return }
            case .identityCertificate(let keyPath, let certificatePath):
                guard let certificate = readCertificate(certificatePath, explicit: false),
                    let key = keys.privateKey(keyPath, reportMissing: false)
                else { continue }
                guard let blob = try? key.publicKey().publicBlob(), certificate.certifies(publicBlob: blob) else {
                    diagnostics.debug("\(certificate.path) does not certify the key in \(keyPath); not offered")
                    continue
                }
                let shown = describe(certificate, key: keyPath)
                tried.append(shown)
                if try accepted(authenticate(client, certificate, key: keyPath), by: shown, client) { return }
            case .certificateFile(let path):
                guard let certificate = readCertificate(path, explicit: true) else { continue }
                let signer = options.identityFiles.first { file in
                    guard let blob = try? keys.privateKey(file, reportMissing: false)?.publicKey().publicBlob() else { return false }
                    return certificate.certifies(publicBlob: blob)
                }
                guard let signer else {
                    // libssh signs through the agent with the blob it offers
                    // (agent.c ssh_agent_sign_data), so a certificate the agent does
                    // not hold itself cannot be signed for by a plain key in the agent.
                    let why = "no identity file holds its key \(certificate.certificate.key.fingerprint)"
                    tried.append("\(certificate.shown) (not offered: \(why))")
                    diagnostics.debug(
                        "\(certificate.shown): \(why); a key in ssh-agent cannot sign for it unless the agent holds the certificate too (ssh-add loads FILE-cert.pub beside FILE)"
                    )
                    continue
                }
                let shown = describe(certificate, key: signer)
                tried.append(shown)
                if try accepted(authenticate(client, certificate, key: signer), by: shown, client) { return }
            }
        }
        let what = tried.isEmpty ? "no key to offer: no ssh-agent (SSH_AUTH_SOCK) and no identity file found" : "tried \(tried.joined(separator: ", "))"
        throw .connection("\(options.user)@\(shownHost): permission denied (\(what))")
    }

    /// The private key files of one authentication, each read once: a missing,
    /// unreadable or passphrase-protected file is reported once and skipped.
    private final class IdentityKeys {
        let diagnostics: Diagnostics
        private var loaded: [String: SSHKey?] = [:]
        private var reported: Set<String> = []

        init(diagnostics: Diagnostics) {
            self.diagnostics = diagnostics
        }

        /// The key in `path`, or nil; `reportMissing` warns about a file that does not exist.
        func privateKey(_ path: String, reportMissing: Bool) -> SSHKey? {
            guard access(path, F_OK) == 0 else {
                if reportMissing, reported.insert(path).inserted { diagnostics.warning("identity file \(path) does not exist") }
                return nil
            }
            if let known = loaded[path] { return known }
            let key = try? SSHKey.importPrivateKey(path: path)
            if key == nil {
                diagnostics.warning("skipping \(path): not readable, or protected by a passphrase (load it into ssh-agent instead)")
            }
            loaded[path] = key
            return key
        }
    }

    /// The certificate a CertificateFile or `FILE-cert` names (ssh also tries
    /// NAME.pub), or nil with a word why: a warning for a CertificateFile, -v
    /// detail for the optional one beside an identity file.
    private func readCertificate(_ path: String, explicit: Bool) -> ClientCertificate? {
        guard let file = ClientCertificate.candidates(for: path).first(where: { access($0, F_OK) == 0 }) else {
            if explicit { diagnostics.warning("certificate file \(path) does not exist") }
            return nil
        }
        do throws(FivedCoreError) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw FivedCoreError(.certificateMalformed, "\(file): cannot read it")
            }
            let certificate = try ClientCertificate(text: text, path: file)
            if let problem = certificate.validityProblem(now: Int64(time(nil))) {
                diagnostics.debug("\(certificate.shown) is \(problem); offered all the same, as ssh does")
            }
            return certificate
        } catch {
            if explicit { diagnostics.warning("skipping \(error.message)") } else { diagnostics.debug("skipping \(error.message)") }
            return nil
        }
    }

    /// `certificate PATH (ID "...", serial N) with key FILE[, expired at ...]`.
    private func describe(_ certificate: ClientCertificate, key: String) -> String {
        let problem = certificate.validityProblem(now: Int64(time(nil))).map { ", \($0)" } ?? ""
        return "\(certificate.shown) with key \(key)\(problem)"
    }

    /// Signs with the key in `keyPath` presenting `certificate`: a fresh copy of
    /// the key, since libssh attaches one certificate per key.
    private func authenticate(_ client: SSHClient, _ certificate: ClientCertificate, key keyPath: String) -> SSHAuthResult {
        do {
            let key = try SSHKey.importPrivateKey(path: keyPath)
            try key.attach(certificate: try SSHKey.importCertificate(path: certificate.path))
            return client.authenticate(with: key)
        } catch {
            return .error(error.message)
        }
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

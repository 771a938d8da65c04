/// The known_hosts decision fived-connect makes about the host key a server
/// offered, as OpenSSH's `check_host_key` (sshconnect.c) and
/// `check_hostkeys_by_key_or_type` (hostfile.c) make it for a plain key, with
/// two deliberate differences:
///
/// - A key marked `@revoked` is refused whatever StrictHostKeyChecking says
///   (ssh with `StrictHostKeyChecking=no` continues "unsafely").
/// - libssh 0.10.6's client cannot negotiate a certificate host key
///   (`ssh_client_select_hostkeys` removes the `*-cert-v01@openssh.com` types,
///   kex.c:687-688), so a host known only through `@cert-authority` lines is an
///   unknown host whose plain key is judged by StrictHostKeyChecking, and the
///   message names the CA line that could not be used. A CA line's key is never
///   taken for the host's own key.
///
/// Pure: the caller reads the files (UserKnownHostsFile first: it is the one a
/// new key is recorded in; then GlobalKnownHostsFile) and records the key.
public struct HostKeyCheck: Sendable, Equatable {
    /// A known_hosts file's path and text (empty when it does not exist).
    public struct File: Sendable, Equatable {
        public let path: String
        public let text: String

        public init(path: String, text: String) {
            self.path = path
            self.text = text
        }
    }

    /// The host key the server offered.
    public struct OfferedKey: Sendable, Equatable {
        /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...
        public let type: String
        /// `SHA256:...`.
        public let fingerprint: String
        /// The public key blob (RFC 4253 §6.6).
        public let blob: [UInt8]

        public init(type: String, fingerprint: String, blob: [UInt8]) {
            self.type = type
            self.fingerprint = fingerprint
            self.blob = blob
        }
    }

    /// Why the connection must not go on. Every kind ends fived-connect with
    /// status 255 and is final: reconnecting cannot help, the user must act.
    public struct Refusal: Sendable, Equatable, Error {
        public enum Kind: Sendable, Equatable {
            /// Not known, and StrictHostKeyChecking is yes (or ask).
            case unknown
            /// Known_hosts holds the host's keys, and this is none of them.
            case changed
            /// A `@revoked` line lists the key.
            case revoked
            /// Not known, StrictHostKeyChecking is yes, and only
            /// `@cert-authority` lines name the host.
            case certificateAuthorityOnly
        }

        public let kind: Kind
        /// One line for stderr, naming the files and lines concerned.
        public let message: String
    }

    /// What to do.
    public enum Outcome: Sendable, Equatable {
        /// The key is recorded at this `FILE:LINE`: go on.
        case known(String)
        /// Record the key in UserKnownHostsFile and go on; `note` says so to the user.
        case record(note: String)
        case refuse(Refusal)
    }

    /// The name known_hosts records (`[host]:port`, or `host` on port 22).
    public let name: String
    public let hostName: String
    public let port: UInt16
    public let offered: OfferedKey
    /// UserKnownHostsFile, then GlobalKnownHostsFile.
    public let files: [File]
    public let strict: StrictHostKeyChecking

    public init(name: String, hostName: String, port: UInt16, offered: OfferedKey, files: [File], strict: StrictHostKeyChecking) {
        self.name = name
        self.hostName = hostName
        self.port = port
        self.offered = offered
        self.files = files
        self.strict = strict
    }

    /// One line of one file, for messages.
    struct Located {
        let path: String
        let entry: KnownHostsFile.Entry
        var place: String { "\(path):\(entry.line)" }
    }

    /// The file a new key is written to.
    var recordFile: String { files.first?.path ?? "known_hosts" }

    var shownKey: String { "\(offered.type) \(offered.fingerprint)" }

    /// The decision, in OpenSSH's order: revocation overrides everything
    /// (hostfile.c `check_key_not_revoked` runs last and wins), then a matching
    /// plain line, then any other plain line (changed), then unknown.
    public func decide() -> Outcome {
        let lines = files.flatMap { file in
            KnownHostsFile.lines(in: file.text, hostName: hostName, port: port).map { Located(path: file.path, entry: $0) }
        }
        if let revoked = lines.first(where: { $0.entry.marker == .revoked && $0.entry.blob == offered.blob }) {
            return .refuse(
                Refusal(
                    kind: .revoked,
                    message: "host key for \(name) (\(shownKey)) is revoked: \(revoked.place) marks it @revoked; "
                        + "refusing to connect whatever StrictHostKeyChecking says (it may be a stolen key used to impersonate the host)"))
        }
        let plain = lines.filter { $0.entry.marker == .none }
        if let match = plain.first(where: { $0.entry.blob == offered.blob }) {
            return .known(match.place)
        }
        if !plain.isEmpty {
            let recorded = plain.map { "\($0.place) has \($0.entry.keyType) \($0.entry.fingerprint ?? "(unreadable key)")" }
                .joined(separator: ", ")
            return .refuse(
                Refusal(
                    kind: .changed,
                    message: "HOST KEY FOR \(name) HAS CHANGED: the server offers \(shownKey) but \(recorded); "
                        + "refusing to connect; if the change is expected, remove the old key with: ssh-keygen -R '\(name)' -f \(plain[0].path)"))
        }
        let authorities = lines.filter { $0.entry.marker == .certificateAuthority }
        let unusable =
            authorities.isEmpty
            ? ""
            : "\(authorities.map(\.place).joined(separator: ", ")) "
                + "\(authorities.count == 1 ? "names a certificate authority" : "name certificate authorities") (@cert-authority) for \(name), "
                + "but fived-connect cannot verify host certificates (libssh 0.10.6 negotiates no certificate host key)"
        switch strict {
        case .yes where authorities.isEmpty:
            return .refuse(
                Refusal(
                    kind: .unknown,
                    message: "host key for \(name) is not known (\(shownKey)); "
                        + "if that fingerprint is right, run once with -o StrictHostKeyChecking=accept-new to record it in \(recordFile)"))
        case .yes:
            return .refuse(
                Refusal(
                    kind: .certificateAuthorityOnly,
                    message: "host key for \(name) is not known (\(shownKey)): \(unusable); "
                        + "if that fingerprint is right, run once with -o StrictHostKeyChecking=accept-new to record the plain key in \(recordFile)"))
        case .acceptNew, .no:
            let note = "permanently added '\(name)' (\(shownKey)) to \(recordFile)"
            return .record(note: authorities.isEmpty ? note : "\(note); \(unusable)")
        }
    }
}

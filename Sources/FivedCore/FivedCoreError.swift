/// The one error type of FivedCore: a stable, matchable `code` and a message a
/// user can act on without reading the source (it names the file, line, flag,
/// key or service concerned).
public struct FivedCoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, stable across releases so that callers and tests can match it.
    public enum Code: String, Sendable, Equatable {
        case invalidServiceName
        case invalidBackend
        case invalidListenAddress
        case invalidAllowRule
        case configUnreadable
        case configSyntax
        case configUnknownKey
        case configInvalidValue
        case invalidFlag
        case authorizedKeyMalformed
        case authorizedKeyUnknownOption
        case authorizedKeyUnsupported
        case proxyProtocol
        // fived-connect: -L/-R specs, ssh_config text, -o options, known_hosts.
        case invalidForwardSpec
        case clientConfigSyntax
        case invalidClientOption
        // OpenSSH certificates, their CAs and revocation (Sources/FivedCore/Certificates).
        /// A certificate blob or `-cert.pub` line that does not parse (PROTOCOL.certkeys).
        case certificateMalformed
        /// A well-formed certificate of a kind fived does not handle (a DSA or chained CA, an sk CA).
        case certificateUnsupported
        /// A `trusted_user_ca_keys` file line that is not a plain public key.
        case trustedCAKeyMalformed
        /// An `authorized_principals_file` line that does not parse.
        case authorizedPrincipalsMalformed
        /// A `revoked_keys` file that is neither a KRL (PROTOCOL.krl) nor a list of keys.
        case revokedKeysMalformed
        /// A `pty-req`'s encoded terminal modes that do not parse (RFC 4254 §8).
        case terminalModesMalformed
        // The fleet (Sources/FivedCore/Fleet).
        /// A relayed caller (`RelayedCaller`) that does not parse or breaks a bound.
        case relayedCallerMalformed
        /// A registry record read from etcd that does not parse.
        case registryRecordMalformed
    }

    public let code: Code
    /// One line, no trailing period, naming the thing concerned.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

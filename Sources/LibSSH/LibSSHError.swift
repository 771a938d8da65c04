/// The one error type of the LibSSH wrapper: every libssh return code is checked
/// at the boundary and turned into this, so nothing above sees C error codes.
public struct LibSSHError: Error, Sendable, CustomStringConvertible {
    /// What failed, stable so callers can match it.
    public enum Code: String, Sendable {
        case allocation
        case option
        case keyImport
        case keyGenerate
        case keyExport
        case accept
        case keyExchange
        case event
        case channel
        case connect
        case authentication
        case hostKey
    }

    public let code: Code
    /// What libssh said (`ssh_get_error`), prefixed with what we were doing.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

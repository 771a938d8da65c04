import CLibSSH

/// Process-wide libssh setup. Call `LibSSH.initialize()` once before any other use,
/// from the main thread (libssh's own init is not thread-safe).
public enum LibSSH {
    /// Initialises libssh's crypto backend. Safe to call more than once.
    public static func initialize() {
        _ = ssh_init()
    }

    /// libssh's version string, e.g. "0.10.6/openssl/zlib".
    public static var version: String {
        String(cString: ssh_version(0))
    }

    /// Sets libssh's own log verbosity (0 none .. 4 functions). fived keeps it at
    /// 0 except at trace level; libssh writes its log to stderr itself.
    public static func setLogVerbosity(_ level: Int32) {
        _ = ssh_set_log_level(level)
    }
}

/// Reads libssh's last error for a session/bind/etc. handle.
@inline(__always)
func lastError(_ handle: UnsafeMutableRawPointer?) -> String {
    guard let handle, let cstr = ssh_get_error(handle) else { return "unknown libssh error" }
    let text = String(cString: cstr)
    return text.isEmpty ? "unknown libssh error" : text
}

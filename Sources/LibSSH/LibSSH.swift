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

/// Receives libssh's log messages for the thread that installed it.
public protocol LibSSHLogSink: AnyObject {
    /// One message: libssh's priority (1 warning, 2 protocol, 3 packet, 4
    /// functions), the libssh function that logged it, and the line as libssh
    /// formats it ("function: text").
    func libssh(logged line: String, priority: Int32, function: String)
}

extension LibSSH {
    /// Routes libssh's log on the calling thread to `sink`, for messages at
    /// `verbosity` and below. libssh keeps the log level, the callback and its
    /// user data per thread (log.c: `LIBSSH_THREAD`), so each event-loop thread
    /// installs its own; `sink` must outlive the thread's use of libssh.
    public static func routeLog(verbosity: Int32, to sink: LibSSHLogSink) {
        _ = ssh_set_log_level(verbosity)
        _ = ssh_set_log_userdata(Unmanaged.passUnretained(sink as AnyObject).toOpaque())
        _ = ssh_set_log_callback { priority, function, buffer, userdata in
            guard let userdata, let buffer else { return }
            let sink = Unmanaged<AnyObject>.fromOpaque(userdata).takeUnretainedValue() as! LibSSHLogSink
            sink.libssh(logged: String(cString: buffer), priority: priority, function: function.map { String(cString: $0) } ?? "")
        }
    }
}

import FivedSystem
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide set-up of fived-connect, before any connection.
public enum ClientProcess {
    /// Opens descriptors 0–2 on /dev/null if they are closed (so no socket lands
    /// on them), ignores SIGPIPE, initialises libssh and sets its own log
    /// verbosity (0 none .. 4; fived-connect passes -v counts above one).
    public static func prepare(libsshVerbosity: Int32) {
        Syscall.sanitizeStandardDescriptors()
        signal(SIGPIPE, SIG_IGN)
        LibSSH.initialize()
        if libsshVerbosity > 0 { LibSSH.setLogVerbosity(libsshVerbosity) }
    }
}

import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// The write end of the self-pipe; set once, before any handler is installed.
nonisolated(unsafe) private var signalPipeWriteFD: Int32 = -1

/// Signals turned into bytes on a pipe, so an event loop (which libssh restarts
/// after EINTR) sees them as a readable descriptor. The handler writes the signal
/// number and restores errno, so it never disturbs the code it interrupted.
public enum SignalPipe {
    nonisolated(unsafe) private static var readEnd: Int32 = -1

    /// The descriptor to poll for readability; -1 before `install`.
    public static var readFD: Int32 { readEnd }

    /// Installs handlers for `signals` (SA_RESTART), ignores SIGPIPE, and unblocks
    /// `signals` in this thread (a parent may have left them blocked, and the mask
    /// survives exec). Call once, from the main thread, before other threads start.
    public static func install(_ signals: [Int32]) throws(SystemError) {
        signal(SIGPIPE, SIG_IGN)
        if readEnd < 0 {
            let (r, w) = try Syscall.pipe(nonBlocking: true)
            readEnd = r.release()
            signalPipeWriteFD = w.release()
        }
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                let saved = errno
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(signalPipeWriteFD, &byte, 1)
                errno = saved
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
        var set = sigset_t()
        sigemptyset(&set)
        for sig in signals { sigaddset(&set, sig) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// The signals received since the last call, in order (drains the pipe).
    public static func take() -> [Int32] {
        var got: [Int32] = []
        var byte: UInt8 = 0
        while readEnd >= 0, read(readEnd, &byte, 1) == 1 { got.append(Int32(byte)) }
        return got
    }
}

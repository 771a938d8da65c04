import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// A pseudo-terminal pair for a program started on a terminal (pty(7)): the
/// master, which fived reads and writes, and the slave's path, which the child
/// opens as its controlling terminal (a session leader's first open of a
/// terminal without `O_NOCTTY` makes it one, credentials(7)).
///
/// The parent also holds the slave open while it sets the modes and size, and
/// must close it once the child has it (`closeSlave`): a master reads EIO once
/// every slave descriptor is closed, which is how the end of the program's
/// output shows.
public final class PseudoTerminal {
    /// The master side: non-blocking, close-on-exec. Its owner (the channel's
    /// backend) closes it.
    public let master: Descriptor
    /// `/dev/pts/N`.
    public let slavePath: String
    private var slave: Descriptor?

    /// Opens a new pair (posix_openpt, grantpt, unlockpt) and the slave.
    public init() throws(SystemError) {
        let fd = fived_open_pty_master()
        guard fd >= 0 else { throw SystemError("posix_openpt", errno: errno) }
        master = Descriptor(fd)
        let number = fived_pty_number(fd)
        guard number >= 0 else {
            let e = errno
            master.close()
            throw SystemError("ioctl(TIOCGPTN)", errno: e)
        }
        slavePath = "/dev/pts/\(number)"
        do {
            let slaveFD = try Syscall.retrying("open") { open(slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC) }
            slave = Descriptor(slaveFD)
            try Syscall.setNonBlocking(fd)
        } catch {
            master.close()
            slave?.close()
            throw error
        }
    }

    /// Changes the slave's termios settings (tcgetattr, `update`, tcsetattr TCSANOW).
    public func updateAttributes(_ update: (inout termios) -> Void) throws(SystemError) {
        guard let slave else { throw SystemError("tcsetattr", errno: EBADF) }
        var settings = termios()
        guard tcgetattr(slave.rawValue, &settings) == 0 else { throw SystemError("tcgetattr", errno: errno) }
        update(&settings)
        guard tcsetattr(slave.rawValue, TCSANOW, &settings) == 0 else { throw SystemError("tcsetattr", errno: errno) }
    }

    /// Sets the window size, in characters and pixels (ioctl TIOCSWINSZ).
    public func setWindowSize(rows: UInt16, columns: UInt16, widthPixels: UInt16, heightPixels: UInt16) throws(SystemError) {
        try Self.setWindowSize(of: master.rawValue, rows: rows, columns: columns, widthPixels: widthPixels, heightPixels: heightPixels)
    }

    /// Sets the window size of the terminal behind `fd` (a master, after the
    /// child has started: its foreground process group gets SIGWINCH).
    public static func setWindowSize(of fd: Int32, rows: UInt16, columns: UInt16, widthPixels: UInt16, heightPixels: UInt16)
        throws(SystemError)
    {
        guard fived_set_window_size(fd, rows, columns, widthPixels, heightPixels) == 0 else {
            throw SystemError("ioctl(TIOCSWINSZ)", errno: errno)
        }
    }

    /// Hands the slave descriptor over (to be passed to the process that makes
    /// it a controlling terminal); the pair keeps none.
    public func takeSlave() -> Descriptor? {
        defer { slave = nil }
        return slave
    }

    /// Closes the parent's slave descriptor (once the child has opened its own).
    public func closeSlave() {
        slave?.close()
        slave = nil
    }
}

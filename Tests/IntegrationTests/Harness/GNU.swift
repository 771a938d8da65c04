#if canImport(Glibc)
import Glibc
#endif

/// glibc functions that Swift's Glibc module hides (they need _GNU_SOURCE), looked up
/// by name. Each keeps descriptors close-on-exec from birth, which matters because tests
/// run in parallel and spawn processes at any moment.
enum GNU {
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private typealias Accept4 = @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    private static func symbol<T>(_ name: String, as type: T.Type) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, name) else { return nil }
        return unsafeBitCast(pointer, to: type)
    }

    private static let pipe2Function = symbol("pipe2", as: Pipe2.self)
    private static let accept4Function = symbol("accept4", as: Accept4.self)
    private static let addCloseFromFunction = symbol(
        "posix_spawn_file_actions_addclosefrom_np", as: AddCloseFrom.self)

    /// pipe2(fds, O_CLOEXEC).
    static func pipeCloexec(_ fds: UnsafeMutablePointer<Int32>) -> Int32 {
        if let pipe2Function { return pipe2Function(fds, O_CLOEXEC) }
        guard pipe(fds) == 0 else { return -1 }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return 0
    }

    /// accept4(fd, NULL, NULL, SOCK_CLOEXEC).
    static func acceptCloexec(_ fd: Int32) -> Int32 {
        if let accept4Function { return accept4Function(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue)) }
        let accepted = accept(fd, nil, nil)
        if accepted >= 0 { _ = fcntl(accepted, F_SETFD, FD_CLOEXEC) }
        return accepted
    }

    /// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+); false when missing.
    @discardableResult
    static func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ lowest: Int32) -> Bool {
        guard let addCloseFromFunction else { return false }
        return addCloseFromFunction(actions, lowest) == 0
    }

    private typealias OpenPT = @convention(c) (Int32) -> Int32
    private typealias PTYCall = @convention(c) (Int32) -> Int32
    private typealias PTSName = @convention(c) (Int32, UnsafeMutablePointer<CChar>, Int) -> Int32
    private static let posixOpenPT = symbol("posix_openpt", as: OpenPT.self)
    private static let grantPT = symbol("grantpt", as: PTYCall.self)
    private static let unlockPT = symbol("unlockpt", as: PTYCall.self)
    private static let ptsNameR = symbol("ptsname_r", as: PTSName.self)

    /// A new pseudo-terminal: the master descriptor (close-on-exec) and the slave's path.
    static func openPseudoTerminal() throws -> (master: Int32, slavePath: String) {
        guard let posixOpenPT, let grantPT, let unlockPT, let ptsNameR else {
            throw HarnessError("no posix_openpt/grantpt/unlockpt/ptsname_r in this libc")
        }
        let master = posixOpenPT(O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { throw HarnessError("posix_openpt: \(errnoText())") }
        var name = [CChar](repeating: 0, count: 128)
        guard grantPT(master) == 0, unlockPT(master) == 0, ptsNameR(master, &name, name.count) == 0 else {
            let text = errnoText()
            close(master)
            throw HarnessError("pseudo-terminal setup: \(text)")
        }
        return (master, String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}

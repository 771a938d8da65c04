#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The file system side of configuration: reading the config file and asking
/// whether an exec program can be run. Everything else in Config/ is pure.
enum ConfigFileReader {
    /// A config file larger than this is refused: it is surely the wrong file.
    static let maximumSize = 1 << 20

    /// The UTF-8 text of the file at `path`; errors name the file and the reason.
    static func readText(_ path: String) throws(FivedCoreError) -> String {
        func fail(_ why: String) -> FivedCoreError {
            FivedCoreError(.configUnreadable, "\(path): cannot read the config file: \(why)")
        }
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw fail(errnoText()) }
        defer { close(fd) }

        var info = stat()
        guard fstat(fd, &info) == 0 else { throw fail(errnoText()) }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw fail("it is a directory") }

        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { buffer in
                retryingEINTR { read(fd, buffer.baseAddress, buffer.count) }
            }
            guard n >= 0 else { throw fail(errnoText()) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[..<n])
            guard bytes.count <= maximumSize else { throw fail("it is larger than 1 MiB") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw FivedCoreError(.configSyntax, "\(path): the config file is not UTF-8 text")
        }
        return text
    }

    /// True when `path` is a regular file this process may execute.
    static func isExecutable(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    private static func errnoText() -> String {
        String(cString: strerror(errno))
    }

    private static func retryingEINTR<T: BinaryInteger>(_ call: () -> T) -> T {
        while true {
            let result = call()
            if result >= 0 || errno != EINTR { return result }
        }
    }
}

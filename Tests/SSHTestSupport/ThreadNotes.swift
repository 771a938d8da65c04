import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Notes a server thread leaves for the test thread, by key.
public final class ThreadNotes: Sendable {
    private let values = Mutex<[String: String]>([:])

    public init() {}

    public subscript(key: String) -> String? {
        get { values.withLock { $0[key] } }
        set { values.withLock { $0[key] = newValue } }
    }

    /// Waits until `key` is set, at most `seconds` (checking every 10 ms).
    public func wait(for key: String, seconds: Int = 5) -> String? {
        for _ in 0..<(seconds * 100) {
            if let value = self[key] { return value }
            usleep(10_000)
        }
        return nil
    }
}

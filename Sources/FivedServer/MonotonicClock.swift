#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in milliseconds, for durations and deadlines.
enum MonotonicClock {
    static var now: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

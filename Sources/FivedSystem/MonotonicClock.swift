#if canImport(Glibc)
import Glibc
#endif

/// The one clock for durations and deadlines: CLOCK_MONOTONIC in milliseconds.
public enum MonotonicClock {
    /// Milliseconds since an arbitrary point; never goes back.
    public static var now: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

extension MonotonicClock {
    /// Nanoseconds on the same clock, for durations finer than a millisecond.
    public static var nanoseconds: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// How long to wait before the next attempt after `failures` failures in a row,
/// in ms: 250 ms doubling to a cap of 8 s, with up to a quarter more at random
/// so that nodes that lost a peer together do not all call back at once.
public enum ReconnectBackoff {
    public static let firstMilliseconds: Int64 = 250
    public static let capMilliseconds: Int64 = 8000

    /// The delay after `failures` (>= 1) failures; `jitter` in 0...1 (random by default).
    public static func delay(afterFailures failures: Int, jitter: Double = Double.random(in: 0...1)) -> Int64 {
        let steps = max(0, min(failures - 1, 16))
        let base = min(capMilliseconds, firstMilliseconds << Int64(steps))
        return base + Int64(Double(base) / 4 * max(0, min(1, jitter)))
    }
}

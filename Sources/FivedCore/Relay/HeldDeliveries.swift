/// Client data a channel leaves in libssh so it reaches the service in one
/// larger send: which channels must let go after a read pass of their connection.
///
/// A channel holds its bytes at most until the connection's socket has nothing
/// more for now, and never longer than one further pass (about 256 KiB of the
/// connection's traffic), so a quiet channel is not kept waiting behind a busy
/// one on the same connection.
public struct HeldDeliveries<Item> {
    private var sinceThisPass: [Item] = []
    private var sinceLastPass: [Item] = []

    public init() {}

    /// True when nothing is held.
    public var isEmpty: Bool { sinceThisPass.isEmpty && sinceLastPass.isEmpty }

    /// `item` held data back during the current pass.
    public mutating func hold(_ item: Item) {
        sinceThisPass.append(item)
    }

    /// Ends a read pass. Returns the items whose data must go now: all of them
    /// when the input ran dry, otherwise those already held before this pass.
    public mutating func endPass(inputDrained: Bool) -> [Item] {
        if inputDrained {
            defer { sinceThisPass.removeAll(); sinceLastPass.removeAll() }
            return sinceLastPass + sinceThisPass
        }
        let due = sinceLastPass
        sinceLastPass = sinceThisPass
        sinceThisPass = []
        return due
    }
}

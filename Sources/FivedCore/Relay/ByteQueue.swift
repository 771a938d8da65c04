/// Bytes on their way through a channel: read into in place and written out in
/// place, so a busy channel reuses one allocation instead of making one per
/// chunk. The memory is given back with `releaseIfEmpty()` once the channel goes
/// quiet, so idle channels hold none.
///
/// A class, not a struct: `fill` may run libssh, which may re-enter the
/// channel's callbacks, and those look at the queue (Swift would see a struct's
/// fill as an exclusive access still in progress).
public final class ByteQueue {
    private var storage: UnsafeMutableRawBufferPointer?
    private var head = 0
    private var tail = 0
    /// The size of the one allocation (larger only for a larger `set`).
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
    }

    deinit { storage?.deallocate() }

    /// Bytes not yet taken.
    public var count: Int { tail - head }
    public var isEmpty: Bool { head == tail }

    /// Replaces the contents with `bytes` (a queue is only refilled once empty).
    public func set(_ bytes: [UInt8]) {
        precondition(isEmpty, "ByteQueue refilled before it was drained")
        guard !bytes.isEmpty else { return }
        reserve(bytes.count)
        bytes.withUnsafeBytes { storage!.copyMemory(from: $0) }
        head = 0
        tail = bytes.count
    }

    /// Fills the empty queue: `body` is given room for `size` bytes (at most the
    /// capacity) and returns how many it wrote (negative for none, as read(2)
    /// does). Returns that value.
    @discardableResult
    public func fill(upTo requested: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        precondition(isEmpty, "ByteQueue refilled before it was drained")
        let size = min(requested, capacity)
        reserve(size)
        let n = body(UnsafeMutableRawBufferPointer(rebasing: storage![0..<size]))
        head = 0
        tail = max(0, min(n, size))
        return n
    }

    /// Calls `body` with up to `limit` of the bytes not yet taken; it returns how
    /// many it took (negative for none). Returns that value.
    public func drain(limit: Int = .max, _ body: (UnsafeRawBufferPointer) throws -> Int) rethrows -> Int {
        guard let storage, !isEmpty else { return 0 }
        let end = head + min(count, limit)
        let n = try body(UnsafeRawBufferPointer(rebasing: storage[head..<end]))
        if n > 0 { head += min(n, end - head) }
        if head == tail { head = 0; tail = 0 }
        return n
    }

    /// Drops what is left.
    public func clear() {
        head = 0
        tail = 0
    }

    /// True while it holds memory.
    public var holdsMemory: Bool { storage != nil }

    /// Gives the memory back if nothing is waiting in it.
    public func releaseIfEmpty() {
        guard isEmpty, let storage else { return }
        storage.deallocate()
        self.storage = nil
    }

    private func reserve(_ size: Int) {
        if let storage, storage.count >= size { return }
        storage?.deallocate()
        storage = .allocate(byteCount: max(size, capacity), alignment: 16)
    }
}

import Testing

@testable import FivedCore

@Suite struct ByteQueueTests {
    @Test func fillsAndDrainsInPieces() {
        let queue = ByteQueue(capacity: 16)
        #expect(queue.isEmpty && !queue.holdsMemory)
        let n = queue.fill(upTo: 10) { room in
            #expect(room.count == 10)
            for i in 0..<6 { room[i] = UInt8(i) }
            return 6
        }
        #expect(n == 6 && queue.count == 6)
        var seen: [UInt8] = []
        let first = queue.drain(limit: 4) { bytes in
            #expect(bytes.count == 4)
            seen += bytes.prefix(3)
            return 3  // a short write
        }
        #expect(first == 3 && queue.count == 3)
        _ = queue.drain { bytes in
            seen += bytes; return bytes.count
        }
        #expect(seen == [0, 1, 2, 3, 4, 5])
        #expect(queue.isEmpty)
    }

    @Test func failedReadsAndWritesLeaveItUnchanged() {
        let queue = ByteQueue(capacity: 16)
        #expect(queue.fill(upTo: 8) { _ in -1 } == -1)
        #expect(queue.isEmpty)
        queue.set([7, 8, 9])
        #expect(queue.drain { _ in -1 } == -1)
        #expect(queue.count == 3)
        #expect(queue.drain { _ in 0 } == 0)
        #expect(queue.count == 3)
    }

    @Test func aBodyClaimingMoreThanItWasGivenCannotOverrun() {
        let queue = ByteQueue(capacity: 16)
        queue.fill(upTo: 4) { _ in 100 }
        #expect(queue.count == 4)
        #expect(queue.drain { _ in 100 } == 100)
        #expect(queue.isEmpty)
    }

    @Test func memoryIsReusedWhileBusyAndGivenBackWhenEmpty() {
        let queue = ByteQueue(capacity: 16)
        queue.set([1, 2, 3])
        #expect(queue.holdsMemory)
        queue.releaseIfEmpty()
        #expect(queue.holdsMemory, "bytes are still waiting: the memory must stay")
        queue.clear()
        #expect(queue.isEmpty)
        queue.releaseIfEmpty()
        #expect(!queue.holdsMemory)
        // A fill never offers more than the capacity; a larger `set` still fits.
        queue.fill(upTo: 1 << 16) { room in
            #expect(room.count == 16); return room.count
        }
        #expect(queue.count == 16)
        queue.clear()
        let long = (0..<100).map { UInt8($0) }
        queue.set(long)
        var seen: [UInt8] = []
        _ = queue.drain { bytes in
            seen += bytes; return bytes.count
        }
        #expect(seen == long)
    }
}

@Suite struct HeldDeliveriesTests {
    @Test func everythingGoesWhenTheInputRunsDry() {
        var held = HeldDeliveries<Int>()
        held.hold(1)
        held.hold(2)
        #expect(held.endPass(inputDrained: false) == [])
        held.hold(3)
        #expect(held.endPass(inputDrained: true).sorted() == [1, 2, 3])
        #expect(held.isEmpty)
    }

    @Test func noItemWaitsMoreThanOneFurtherPassBehindOtherTraffic() {
        // A connection whose socket never runs dry (another channel uploading):
        // whatever is held in pass N is released at the end of pass N + 1.
        var held = HeldDeliveries<Int>()
        var releasedAt: [Int: Int] = [:]
        for pass in 0..<10 {
            held.hold(pass)
            for item in held.endPass(inputDrained: false) { releasedAt[item] = pass }
        }
        for item in 0..<9 {
            #expect(releasedAt[item] == item + 1, "item \(item) released at pass \(String(describing: releasedAt[item]))")
        }
        #expect(releasedAt[9] == nil)
        #expect(held.endPass(inputDrained: true) == [9])
        #expect(held.isEmpty)
    }

    @Test func aPassWithNothingHeldReleasesTheEarlierOnes() {
        var held = HeldDeliveries<String>()
        held.hold("quiet")
        #expect(held.endPass(inputDrained: false) == [])
        #expect(held.endPass(inputDrained: false) == ["quiet"])
        #expect(held.isEmpty)
    }
}

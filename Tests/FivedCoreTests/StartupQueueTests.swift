import Testing
@testable import FivedCore

@Suite("Startup sources and the startup queue")
struct StartupQueueTests {
    @Test func ipv4CountsByAddressAndIPv6ByPrefix() {
        #expect(StartupSource.key("192.0.2.7", prefix6: 64) == "192.0.2.7")
        #expect(StartupSource.key("::ffff:192.0.2.7", prefix6: 64) == "192.0.2.7")
        #expect(StartupSource.key("2001:db8:1:2:aaaa::1", prefix6: 64) == "2001:db8:1:2::/64")
        #expect(StartupSource.key("2001:db8:1:2:bbbb::9", prefix6: 64) == "2001:db8:1:2::/64")
        #expect(StartupSource.key("2001:db8:1:3::1", prefix6: 64) == "2001:db8:1:3::/64")
        #expect(StartupSource.key("2001:db8:1:2:aaaa::1", prefix6: 56) == "2001:db8:1::/56")
        #expect(StartupSource.key("2001:db8::ff", prefix6: 121) == "2001:db8::80/121")
        #expect(StartupSource.key("2001:db8::1", prefix6: 128) == "2001:db8::1/128")
        #expect(StartupSource.key("not an address", prefix6: 64) == "not an address")
    }

    @Test func entriesWaitAndAreAdmittedInOrder() {
        var queue = StartupQueue<Int>(capacity: 10, capacityPerSource: 10)
        for i in 0..<3 { _ = queue.enqueue(i, source: "a", now: 0) }
        var slots = 2
        let first = queue.admit { _ in
            defer { slots -= 1 }; return slots > 0
        }
        #expect(first == [0, 1])
        #expect(queue.count == 1)
        let second = queue.admit { _ in true }
        #expect(second == [2])
        #expect(queue.isEmpty)
    }

    @Test func sourcesTakeTurnsSoAFloodKeepsNobodyOut() {
        var queue = StartupQueue<String>(capacity: 100, capacityPerSource: 100)
        for i in 0..<50 { _ = queue.enqueue("flood\(i)", source: "flood", now: 0) }
        _ = queue.enqueue("office1", source: "office", now: 1)
        _ = queue.enqueue("office2", source: "office", now: 1)
        var slots = 4
        let admitted = queue.admit { _ in
            defer { slots -= 1 }; return slots > 0
        }
        #expect(admitted == ["flood0", "office1", "flood1", "office2"])
    }

    @Test func aSourceTheLimiterRefusesKeepsItsPlace() {
        var queue = StartupQueue<String>(capacity: 10, capacityPerSource: 10)
        _ = queue.enqueue("a1", source: "a", now: 0)
        _ = queue.enqueue("b1", source: "b", now: 0)
        let onlyB = queue.admit { $0 == "b" }
        #expect(onlyB == ["b1"])
        let rest = queue.admit { _ in true }
        #expect(rest == ["a1"])
    }

    @Test func theQueueIsBoundedInAllAndPerSource() {
        var queue = StartupQueue<Int>(capacity: 3, capacityPerSource: 2)
        let queued = [
            queue.enqueue(1, source: "a", now: 0), queue.enqueue(2, source: "a", now: 0), queue.enqueue(3, source: "a", now: 0),
            queue.enqueue(4, source: "b", now: 0), queue.enqueue(5, source: "c", now: 0),
        ]
        #expect(queued == [true, true, false, true, false])
        #expect(StartupQueue<Int>(limits: Limits()).capacity == 1024)
        #expect(StartupQueue<Int>(limits: Limits()).capacityPerSource == 128)
    }

    @Test func entriesExpireAfterTheGraceTime() {
        var queue = StartupQueue<Int>(capacity: 10, capacityPerSource: 10)
        _ = queue.enqueue(1, source: "a", now: 0)
        _ = queue.enqueue(2, source: "a", now: 500)
        _ = queue.enqueue(3, source: "b", now: 900)
        #expect(queue.nextExpiry(maximumWait: 1000) == 1000)
        let expired = queue.expire(now: 1000, maximumWait: 1000)
        #expect(expired == [1])
        #expect(queue.count == 2)
        #expect(queue.nextExpiry(maximumWait: 1000) == 1500)
        let later = queue.expire(now: 2000, maximumWait: 1000)
        #expect(Set(later) == [2, 3])
        #expect(queue.isEmpty && queue.nextExpiry(maximumWait: 1000) == nil)
    }
}

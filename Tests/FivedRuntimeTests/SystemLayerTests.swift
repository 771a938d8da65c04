import FivedSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("System layer")
struct SystemLayerTests {
    @Test func aFailedCallNamesItselfAndKeepsErrno() {
        #expect {
            _ = try Syscall.retrying("fcntl", subject: "fd -1") { fcntl(-1, F_GETFL) }
        } throws: { error in
            let e = error as? SystemError
            return e?.errno == EBADF && e?.description == "fcntl fd -1: Bad file descriptor"
        }
    }

    @Test func nonBlockingReadsReportWouldBlockAndEnd() throws {
        let (a, b) = try Syscall.socketPair(nonBlocking: true)
        var buffer = [UInt8](repeating: 0, count: 16)
        let first = try buffer.withUnsafeMutableBytes { try Syscall.recv(a.rawValue, into: $0) }
        guard case .wouldBlock = first else { Issue.record("expected would-block, got \(first)"); return }
        _ = try [UInt8]([1, 2, 3]).withUnsafeBytes { try Syscall.send(b.rawValue, $0) }
        let second = try buffer.withUnsafeMutableBytes { try Syscall.recv(a.rawValue, into: $0) }
        guard case .processed(3) = second else { Issue.record("expected 3 bytes, got \(second)"); return }
        b.close()
        let third = try buffer.withUnsafeMutableBytes { try Syscall.recv(a.rawValue, into: $0) }
        guard case .processed(0) = third else { Issue.record("expected end of stream, got \(third)"); return }
    }

    @Test func aDescriptorClosesOnceAndOnlyWhenOwned() throws {
        let (r, w) = try Syscall.pipe(nonBlocking: true)
        let raw = r.rawValue
        r.close()
        r.close()
        #expect(fcntl(raw, F_GETFD) == -1 && errno == EBADF)
        let kept = w.release()
        #expect(fcntl(kept, F_GETFD) >= 0)
        Syscall.close(kept)
    }

    @Test func ipv4MappedAddressesAreShownAsIPv4() throws {
        var mapped = SocketAddress()
        mapped.storage.ss_family = sa_family_t(AF_INET6)
        withUnsafeMutablePointer(to: &mapped.storage) {
            $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                sin6.pointee.sin6_port = UInt16(2222).bigEndian
                _ = inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6.pointee.sin6_addr)
            }
        }
        mapped.length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        #expect(mapped.endpoint == Endpoint(address: "192.0.2.1", port: 2222))
        #expect(mapped.endpoint?.description == "192.0.2.1:2222")
        #expect(Endpoint(address: "::1", port: 1).description == "[::1]:1")
    }

    @Test func resolutionAndListeningOnPortZero() throws {
        let addresses = try SocketAddress.resolve(host: "127.0.0.1", port: 0, passive: true)
        let listener = try Socket.listen(addresses[0], backlog: 4)
        let port = Socket.boundPort(listener.rawValue)
        #expect(port > 0)
        #expect(Endpoint.local(of: listener.rawValue) == Endpoint(address: "127.0.0.1", port: port))
        #expect(throws: SystemError.self) { try SocketAddress.resolve(host: "no-such-host.invalid", port: 1, passive: false) }
    }

    @Test func aUnixPathThatDoesNotFitIsRefused() {
        #expect { try SocketAddress.unix(path: "/" + String(repeating: "x", count: 200)) } throws: {
            ($0 as? SystemError)?.errno == ENAMETOOLONG
        }
    }

    @Test func signalsArriveOnThePipeAndErrnoSurvivesTheHandler() throws {
        try SignalPipe.install([SIGUSR2])
        errno = ENOENT
        kill(getpid(), SIGUSR2)
        #expect(errno == ENOENT)
        var got: [Int32] = []
        for _ in 0..<100 where got.isEmpty {
            got = SignalPipe.take()
            if got.isEmpty { usleep(10_000) }
        }
        #expect(got == [SIGUSR2])
        signal(SIGUSR2, SIG_DFL)
    }

    @Test func thePollerForgetsAStaleRegistrationWhenItsNumberIsReused() throws {
        let poller = try Poller<String>()
        let (a, b) = try Syscall.socketPair(nonBlocking: true)
        var registration = PollRegistration.none
        poller.update(&registration, fd: a.rawValue, events: PollEvents.readable, target: "first")
        // The number is closed behind the poller's back and reused at once (as
        // libssh closes a dead session's socket): dup2 does both atomically, so
        // no other thread of the test process can take the number in between.
        let (c, other) = try Syscall.socketPair(nonBlocking: true)
        let number = a.release()
        #expect(dup2(c.rawValue, number) == number)
        let reused = Descriptor(number)
        poller.add(reused.rawValue, events: PollEvents.readable, target: "second")
        _ = try [UInt8]([7]).withUnsafeBytes { try Syscall.send(other.rawValue, $0) }
        var seen: [String] = []
        poller.wait(timeoutMilliseconds: 1000) { target, _ in seen.append(target) }
        #expect(seen == ["second"])
        poller.remove(registration.token)  // the stale token only forgets itself
        seen = []
        poller.wait(timeoutMilliseconds: 100) { target, _ in seen.append(target) }
        #expect(seen == ["second"])
        _ = (b, c)
    }
}

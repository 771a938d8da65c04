#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The plain RFC 1078 listener: `NAME CRLF` → `+ CRLF` and the service, or `-reason`.
@Suite("TCPMUX", .timeLimit(.minutes(2)))
struct TCPMUXTests {
    @Test("+ and the service for a tcpmux service; - for others; HELP lists only tcpmux services")
    func tcpmux() async throws {
        var offered = TestService.exec("upper", "/usr/bin/tr", "a-z", "A-Z")
        offered.extra = ["tcpmux = true"]
        var options = FivedOptions(services: [offered, .exec("echo", "/bin/cat")])
        options.tcpmux = true
        try await TestEnvironment.withFived(options) { fived in
            let port = try #require(fived.tcpmuxPort)
            func exchange(_ bytes: String) async throws -> String {
                let reply = try await onThread {
                    let fd = try Sockets.connectTCP(port: port)
                    defer { close(fd) }
                    var timeout = timeval(tv_sec: 15, tv_usec: 0)
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    return try Sockets.exchange(fd, Array(bytes.utf8))
                }
                return String(decoding: reply, as: UTF8.self)
            }
            let upper = try await exchange("upper\r\nhello tcpmux\n")
            #expect(upper == "+\r\nHELLO TCPMUX\n", "\(upper.debugDescription)")
            let notOffered = try await exchange("echo\r\nx")
            #expect(notOffered.hasPrefix("-") && notOffered.hasSuffix("\r\n"), "\(notOffered.debugDescription)")
            let unknown = try await exchange("nothing-here\r\n")
            #expect(unknown.hasPrefix("-"), "\(unknown.debugDescription)")
            let help = try await exchange("HELP\r\n")
            let names = Set(nonEmptyLines(help).map { $0.lowercased() })
            #expect(names.contains("upper") && !names.contains("echo"), "\(help.debugDescription)")
            let tooLong = try await exchange(String(repeating: "a", count: 100) + "\r\n")
            #expect(tooLong.hasPrefix("-"), "\(tooLong.debugDescription)")
        }
    }

    /// A client that pipelines data after its name line and then reads must
    /// still get the `-` reply: fived shuts its side and drains the rest instead
    /// of closing on unread input (which would send a reset and lose the reply).
    @Test("50 pipelined refusals all arrive: `private` followed by 2,000 bytes, then read")
    func pipelinedRefusalsArrive() async throws {
        try await Self.withTCPMUX { fived, port in
            // Ten at a time: 50 at once from one address would pass max_startups_per_source (16).
            var replies: [String] = []
            for _ in 0..<5 {
                replies += try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<10 {
                        group.addTask {
                            try await onThread {
                                let fd = try Sockets.connectTCP(port: port)
                                defer { close(fd) }
                                setReceiveTimeout(fd, seconds: 15)
                                try Sockets.writeAll(fd, Array("private\r\n".utf8) + [UInt8](repeating: 0x78, count: 2000))
                                return String(decoding: try Sockets.readAll(fd), as: UTF8.self)
                            }
                        }
                    }
                    var all: [String] = []
                    for try await reply in group { all.append(reply) }
                    return all
                }
            }
            let arrived = replies.filter { $0 == "-service not available\r\n" }.count
            #expect(arrived == 50, "\(arrived)/50 arrived: \(Set(replies).map(\.debugDescription))")
        }
    }

    /// fived with `upper` (tr a-z A-Z) and `cat` offered on a plain TCPMUX listener,
    /// and `echo` not offered; `body` gets the listener's port.
    private static func withTCPMUX(extraTOML: String = "", _ body: (Fived, UInt16) async throws -> Void) async throws {
        var upper = TestService.exec("upper", "/usr/bin/tr", "a-z", "A-Z")
        upper.extra = ["tcpmux = true"]
        var cat = TestService.exec("cat", "/bin/cat")
        cat.extra = ["tcpmux = true"]
        var options = FivedOptions(services: [upper, cat, .exec("echo", "/bin/cat")], extraTOML: extraTOML)
        options.tcpmux = true
        try await TestEnvironment.withFived(options) { fived in try await body(fived, try #require(fived.tcpmuxPort)) }
    }

    /// Sends `bytes` in one write, half-closes, and returns all that came back.
    private static func exchange(port: UInt16, _ bytes: [UInt8], from source: String = "127.0.0.1") async throws -> [UInt8] {
        try await onThread {
            let fd = try Sockets.connectTCP(port: port, from: source)
            defer { close(fd) }
            setReceiveTimeout(fd, seconds: 15)
            return try Sockets.exchange(fd, bytes)
        }
    }

    @Test("no name within 10 s: -timeout CRLF, then close")
    func timeout() async throws {
        try await Self.withTCPMUX { fived, port in
            let (reply, elapsed) = try await onThread {
                let fd = try Sockets.connectTCP(port: port)
                defer { close(fd) }
                setReceiveTimeout(fd, seconds: 13)
                let started = ContinuousClock.now
                let reply = try Sockets.readAll(fd)  // we send nothing, and never half-close
                return (reply, ContinuousClock.now - started)
            }
            #expect(String(decoding: reply, as: UTF8.self) == "-timeout\r\n", "\(String(decoding: reply, as: UTF8.self).debugDescription)")
            #expect(elapsed >= .seconds(9.5) && elapsed < .seconds(12), "closed after \(elapsed)")
            let logged = await fived.waitForLog { $0.message == "tcpmux closed" }
            #expect(logged?["reason"]?.contains("no name") == true, "\(String(describing: logged))")
        }
    }

    @Test("a bare LF ends the name line; names are compared without case")
    func lineEndsAndCase() async throws {
        try await Self.withTCPMUX { fived, port in
            for (request, want) in [
                ("upper\nbare lf\n", "+\r\nBARE LF\n"),
                ("UPPER\r\nshouting\n", "+\r\nSHOUTING\n"),
                ("uPpEr\nmixed\n", "+\r\nMIXED\n"),
                ("help\n", "cat\r\nupper\r\n"),
            ] {
                let reply = String(decoding: try await Self.exchange(port: port, Array(request.utf8)), as: UTF8.self)
                #expect(reply == want, "\(request.debugDescription) got \(reply.debugDescription)")
            }
            // Case does not open what is not offered.
            let echo = String(decoding: try await Self.exchange(port: port, Array("ECHO\r\nx".utf8)), as: UTF8.self)
            #expect(echo.hasPrefix("-") && echo.hasSuffix("\r\n") && !echo.contains("x"), "\(echo.debugDescription)")
        }
    }

    @Test("bytes after the name line in the same packet reach the service, without waiting for more")
    func bytesAfterTheName() async throws {
        try await Self.withTCPMUX { fived, port in
            let reply = try await onThread {
                let fd = try Sockets.connectTCP(port: port)
                defer { close(fd) }
                setReceiveTimeout(fd, seconds: 10)
                // One send: the name and the first bytes for the service share a segment.
                let request = Array("cat\r\nriding along".utf8)
                let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard sent == request.count else { throw HarnessError("short send: \(sent)") }
                // No half-close and nothing more: cat must echo what came with the name.
                let want = Array("+\r\nriding along".utf8)
                var got: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while got.count < want.count {
                    let n = read(fd, &buffer, buffer.count)
                    if n <= 0 { break }  // EOF, or the 10 s receive timeout
                    got += buffer[0..<n]
                }
                return got
            }
            #expect(
                String(decoding: reply, as: UTF8.self) == "+\r\nriding along",
                "\(String(decoding: reply, as: UTF8.self).debugDescription)")
        }
    }

    @Test("1 MiB round trip through a tcpmux-offered cat service, intact")
    func bulk() async throws {
        try await Self.withTCPMUX { fived, port in
            let data = randomBytes(1 << 20)
            let reply = try await Self.exchange(port: port, Array("cat\r\n".utf8) + data)
            let prefix = Array("+\r\n".utf8)
            #expect(reply.starts(with: prefix), "reply starts \(Array(reply.prefix(8)))")
            expectBytes(Array(reply.dropFirst(prefix.count)), data, "through tcpmux cat")
            let logged = await fived.waitForLog { $0.message == "tcpmux closed" && $0["service"] == "cat" }
            #expect(logged?["bytes_in"] == "\(data.count)", "\(String(describing: logged))")
        }
    }

    @Test("max_startups_per_source = 2: a third concurrent connection from 127.0.0.1 gets `-` and a close at once; 127.0.0.2 still gets in")
    func perSourceLimit() async throws {
        try await Self.withTCPMUX(extraTOML: "[limits]\nmax_startups_per_source = 2") { fived, port in
            // Two connections being served (cat) hold both of 127.0.0.1's slots for
            // as long as they stay open: a slot is counted for a TCPMUX connection's
            // whole life. (Idle ones would hold them only until the 10 s name
            // deadline, which a loaded test runner has outlasted.)
            var held: [Int32] = []
            defer { held.forEach { close($0) } }
            for _ in 0..<2 {
                held.append(
                    try await onThread {
                        let fd = try Sockets.connectTCP(port: port, from: "127.0.0.1")
                        setReceiveTimeout(fd, seconds: 15)
                        try Sockets.writeAll(fd, Array("cat\r\n".utf8))
                        var reply: [UInt8] = []
                        var byte: UInt8 = 0
                        while reply.count < 3, recv(fd, &byte, 1, 0) == 1 { reply.append(byte) }
                        guard reply == Array("+\r\n".utf8) else {
                            close(fd)
                            throw HarnessError("a held connection was answered \(String(decoding: reply, as: UTF8.self).debugDescription)")
                        }
                        return fd
                    })
            }

            let (third, thirdElapsed) = try await onThread {
                let fd = try Sockets.connectTCP(port: port, from: "127.0.0.1")
                defer { close(fd) }
                setReceiveTimeout(fd, seconds: 5)
                let started = ContinuousClock.now
                let bytes = try Sockets.readAll(fd)  // the `-` reply, then EOF (not a reset), at once
                return (bytes, ContinuousClock.now - started)
            }
            #expect(
                String(decoding: third, as: UTF8.self) == "-too many connections from this address\r\n" && thirdElapsed < .seconds(2),
                "third connection: \(String(decoding: third, as: UTF8.self).debugDescription) after \(thirdElapsed) (want a `-` reply and a close at once)")
            let dropped = await fived.waitForLog { $0.message.hasPrefix("tcpmux connection dropped") }
            #expect(dropped?["client"]?.hasPrefix("127.0.0.1:") == true, "\(String(describing: dropped))")

            // Another source is counted apart.
            let other = try await Self.exchange(port: port, Array("upper\r\nfrom two\n".utf8), from: "127.0.0.2")
            #expect(String(decoding: other, as: UTF8.self) == "+\r\nFROM TWO\n", "\(String(decoding: other, as: UTF8.self).debugDescription)")
            let servedTwo = await fived.waitForLog { $0.message == "tcpmux closed" && $0["client"]?.hasPrefix("127.0.0.2:") == true }
            #expect(servedTwo != nil, "no tcpmux connection from 127.0.0.2 logged")

            // A slot freed by a close is available again.
            close(held.removeFirst())
            var again = ""
            let reopened = await eventually(timeout: .seconds(5)) {
                // Until fived has seen the close, this one is still dropped (a reset, if our
                // bytes arrived before its close): try again.
                let reply = (try? await Self.exchange(port: port, Array("upper\r\nagain\n".utf8))) ?? []
                again = String(decoding: reply, as: UTF8.self)
                return again == "+\r\nAGAIN\n"
            }
            #expect(reopened, "127.0.0.1 not admitted after a slot was freed: \(again.debugDescription)")
        }
    }
}

private func setReceiveTimeout(_ fd: Int32, seconds: Int) {
    var timeout = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
}

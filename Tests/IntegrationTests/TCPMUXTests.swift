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
        let environment = try await TestEnvironment.make()
        var offered = TestService.exec("upper", "/usr/bin/tr", "a-z", "A-Z")
        offered.extra = ["tcpmux = true"]
        var options = FivedOptions(services: [offered, .exec("echo", "/bin/cat")])
        let port = try Sockets.unusedPort()
        options.tcpmuxPort = port
        try await environment.withFived(options) { fived in
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
}

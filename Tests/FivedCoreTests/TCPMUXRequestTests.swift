import Testing
@testable import FivedCore

@Suite struct TCPMUXRequestTests {
    static func request(_ text: String) -> TCPMUXRequest { TCPMUXRequest(line: Array(text.utf8)) }

    @Test func names() {
        #expect(Self.request("web") == .service(ServiceName("web")!))
        #expect(Self.request("Web.Example_1-x") == .service(ServiceName("web.example_1-x")!))
        #expect(Self.request(" web\t") == .service(ServiceName("web")!))
        #expect(Self.request(String(repeating: "a", count: 64)) == .service(ServiceName(String(repeating: "a", count: 64))!))
    }

    @Test func help() {
        for text in ["HELP", "help", "Help", "hElP", " HELP "] {
            #expect(Self.request(text) == .help, "\(text)")
        }
    }

    @Test func invalid() {
        for text in ["", " ", "we b", "web/x", "web\r", "wéb", "web\u{0}", "HELP ME", String(repeating: "a", count: 65), "status?"] {
            guard case .invalid(let why) = Self.request(text) else {
                Issue.record("accepted \(text)")
                continue
            }
            #expect(!why.isEmpty)
        }
        #expect(TCPMUXRequest(line: [0xFF, 0xFE]) != .help)
    }

    @Test func readerCRLFAndLF() {
        var r = TCPMUXLineReader()
        #expect(r.feed(Array("we".utf8)) == .needMore)
        #expect(r.feed(Array("b\r".utf8)) == .needMore)
        #expect(r.feed(Array("\nGET / HTTP/1.0\r\n".utf8)) == .complete(.service(ServiceName("web")!), remainder: Array("GET / HTTP/1.0\r\n".utf8)))
        // the answer is sticky
        #expect(r.feed(Array("more\n".utf8)) == .complete(.service(ServiceName("web")!), remainder: Array("GET / HTTP/1.0\r\n".utf8)))

        var lf = TCPMUXLineReader()
        #expect(lf.feed(Array("help\n".utf8)) == .complete(.help, remainder: []))

        var empty = TCPMUXLineReader()
        #expect(empty.feed([]) == .needMore)
        guard case .complete(.invalid, let rest) = empty.feed(Array("\r\nx".utf8)) else {
            Issue.record("empty line not invalid")
            return
        }
        #expect(rest == [UInt8(ascii: "x")])
    }

    @Test func readerByteByByte() {
        var r = TCPMUXLineReader()
        let bytes = Array("echo\r\nhello".utf8)
        var outcomes: [TCPMUXLineReader.Outcome] = []
        for b in bytes { outcomes.append(r.feed([b])) }
        #expect(outcomes.prefix(5).allSatisfy { $0 == .needMore })
        #expect(outcomes[5] == .complete(.service(ServiceName("echo")!), remainder: []))
    }

    @Test func readerLengthLimit() {
        let sixtyFour = Array(String(repeating: "a", count: 64).utf8)
        var exact = TCPMUXLineReader()
        #expect(exact.feed(sixtyFour) == .needMore)
        #expect(exact.feed(Array("\r".utf8)) == .needMore)
        #expect(exact.feed(Array("\n".utf8)) == .complete(.service(ServiceName(String(repeating: "a", count: 64))!), remainder: []))

        var over = TCPMUXLineReader()
        #expect(over.feed(sixtyFour) == .needMore)
        #expect(over.feed(Array("a".utf8)) == .tooLong)
        #expect(over.feed(Array("\n".utf8)) == .tooLong)

        var crThenMore = TCPMUXLineReader()
        #expect(crThenMore.feed(sixtyFour + [0x0D]) == .needMore)
        #expect(crThenMore.feed([0x41]) == .tooLong)

        var huge = TCPMUXLineReader()
        #expect(huge.feed([UInt8](repeating: 0x41, count: 64 * 1024)) == .tooLong)

        // an inner CR is part of the line, not a line end
        var innerCR = TCPMUXLineReader()
        guard case .complete(.invalid, _) = innerCR.feed(Array("we\rb\n".utf8)) else {
            Issue.record("inner CR accepted")
            return
        }
    }
}

import FivedCore
import Foundation
import Testing

@testable import FivedServer

/// FivedLogHandler's two line formats, without a daemon: the text format as it has
/// always been, and the JSON one parsed back with Foundation's JSONSerialization.
@Suite("Log line formats")
struct LogFormatTests {
    /// A client-chosen user name with everything that could break a line.
    static let hostile = "a\"b\\c\u{1}d\ne\tf\u{7F}g é ✓ \u{1F600} key=value"

    static let fields: [(String, String)] = [
        ("user", hostile), ("fingerprint", "SHA256:l4ir1PbNGOY6CBffmWfvkHUZ81pb/O07WEV7bZsKktM"),
        ("client", "127.0.0.1:44406"), ("service", "echo"), ("reason", ""), ("zeta", "1"), ("alpha", "/tmp/x y"),
    ]

    @Test("a JSON line is one object: time, level, message first, then the fields in order, every value a string")
    func jsonLine() throws {
        let line = FivedLogHandler.jsonLine(time: "2026-11-26T17:04:00.291Z", level: "info", message: "authentication failed", fields: Self.fields)
        #expect(!line.contains("\n") && !line.unicodeScalars.contains { $0.value < 0x20 }, "\(line)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        #expect(object["time"] as? String == "2026-11-26T17:04:00.291Z")
        #expect(object["level"] as? String == "info")
        #expect(object["message"] as? String == "authentication failed")
        for (key, value) in Self.fields {
            #expect(object[key] as? String == value, "\(key) in \(line)")
        }
        #expect(object.count == 3 + Self.fields.count)
        // Key order as written: the JSON text has them in this order.
        let names = ["time", "level", "message"] + Self.fields.map(\.0)
        let positions = names.map { line.range(of: "\"\($0)\":")!.lowerBound }
        #expect(positions == positions.sorted(), "\(line)")
        // Non-ASCII stays UTF-8, slashes stay unescaped.
        #expect(line.contains("é ✓ \u{1F600}") && line.contains("SHA256:l4ir1PbNGOY6CBffmWfvkHUZ81pb/O07WEV7bZsKktM"), "\(line)")
    }

    @Test("a metadata key named time, level or message cannot overwrite the logger's own")
    func reservedNames() throws {
        let line = FivedLogHandler.jsonLine(time: "T", level: "info", message: "m", fields: [("message", "forged"), ("level", "error")])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "m" && object["level"] as? String == "info", "\(line)")
        #expect(object["_message"] as? String == "forged" && object["_level"] as? String == "error", "\(line)")
    }

    @Test("the text format is as it was: quoted and escaped values, \\xNN in the message")
    func textLine() {
        let line = FivedLogHandler.textLine(
            time: "2026-11-26T17:04:00.291Z", level: "info", message: "bad\u{1}message",
            fields: [("user", "a\"b\\c\u{1}d\ne"), ("client", "127.0.0.1:1"), ("reason", ""), ("text", "x=y")])
        #expect(line == "2026-11-26T17:04:00.291Z info bad\\x01message user=\"a\\\"b\\\\c\\x01d\\ne\" client=127.0.0.1:1 reason=\"\" text=\"x=y\"")
    }

    @Test("a JSON line costs about what a text line does")
    func cost() {
        let typical: [(String, String)] = [
            ("user", "alice"), ("fingerprint", "SHA256:l4ir1PbNGOY6CBffmWfvkHUZ81pb/O07WEV7bZsKktM"), ("client", "127.0.0.1:44406"),
            ("service", "echo"), ("form", "direct-tcpip"), ("channel", "1"), ("bytes_in", "6"), ("bytes_out", "6"),
            ("duration_ms", "1"), ("reason", "client closed"),
        ]
        func perLine(_ body: () -> String) -> Double {
            let rounds = 2000
            var total = 0
            let start = ContinuousClock.now
            for _ in 0..<rounds { total += body().utf8.count }
            let elapsed = ContinuousClock.now - start
            #expect(total > 0)
            return Double(elapsed.components.attoseconds / 1_000_000_000_000 + elapsed.components.seconds * 1_000_000) / Double(rounds)
        }
        let text = perLine { FivedLogHandler.textLine(time: "2026-11-26T17:04:00.291Z", level: "info", message: "channel closed", fields: typical) }
        let json = perLine { FivedLogHandler.jsonLine(time: "2026-11-26T17:04:00.291Z", level: "info", message: "channel closed", fields: typical) }
        let hostile = perLine { FivedLogHandler.jsonLine(time: "2026-11-26T17:04:00.291Z", level: "info", message: "channel closed", fields: Self.fields) }
        print("log line cost (debug build): text \(text) µs, json \(json) µs, json with a hostile user name \(hostile) µs")
        // Generous: a loaded two-core machine, a debug build. A channel's end is one line.
        #expect(json < 1000 && hostile < 2000, "text \(text) µs, json \(json) µs, hostile \(hostile) µs")
    }
}

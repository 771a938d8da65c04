import FivedCore
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// swift-log handler that writes one line per event on stderr, in the configured
/// `log_format`:
/// - text: `TIMESTAMP LEVEL MESSAGE key=value ...`. Values with spaces, quotes or
///   control characters are quoted and escaped, so a hostile user name cannot forge a line.
/// - json: `{"time":...,"level":...,"message":...,"KEY":"VALUE",...}`, every value a
///   JSON string, keys in the same stable order as the text format.
public struct FivedLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    /// text or json.
    public let format: LogFormat

    /// Keys printed first, in this order; the rest follow sorted.
    static let preferredOrder = [
        "user", "fingerprint", "client", "service", "form", "channel",
        "bytes_in", "bytes_out", "duration_ms", "reason",
    ]

    public init(label: String, level: Logger.Level, format: LogFormat = .text) {
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = self.metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        var keys = Self.preferredOrder.filter { all[$0] != nil }
        keys += all.keys.filter { !Self.preferredOrder.contains($0) }.sorted()
        let fields = keys.map { ($0, "\(all[$0]!)") }
        var line: String
        switch format {
        case .text: line = Self.textLine(time: Self.timestamp(), level: event.level.rawValue, message: "\(event.message)", fields: fields)
        case .json: line = Self.jsonLine(time: Self.timestamp(), level: event.level.rawValue, message: "\(event.message)", fields: fields)
        }
        line += "\n"
        // One write(2) per line keeps lines from different threads whole.
        line.utf8CString.withUnsafeBufferPointer { buf in
            var offset = 0
            let total = buf.count - 1
            while offset < total {
                let n = write(2, buf.baseAddress! + offset, total - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                offset += n
            }
        }
    }

    /// `TIMESTAMP LEVEL MESSAGE key=value ...`, without the newline.
    static func textLine(time: String, level: String, message: String, fields: [(String, String)]) -> String {
        var line = time
        line += " "
        line += level
        line += " "
        line += escapeMessage(message)
        for (key, value) in fields {
            line += " \(key)=\(quote(value))"
        }
        return line
    }

    /// The fields every JSON line starts with. A metadata key of one of these names
    /// (none today) is written with a leading `_`, so an object never has a name twice.
    static let jsonHead: Set<String> = ["time", "level", "message"]

    /// `{"time":"...","level":"...","message":"...","KEY":"VALUE",...}`, without the newline.
    static func jsonLine(time: String, level: String, message: String, fields: [(String, String)]) -> String {
        var line = "{\"time\":" + jsonString(time)
        line += ",\"level\":" + jsonString(level)
        line += ",\"message\":" + jsonString(message)
        for (key, value) in fields {
            line += "," + jsonString(jsonHead.contains(key) ? "_" + key : key) + ":" + jsonString(value)
        }
        return line + "}"
    }

    /// Shared: JSONEncoder is thread-safe, and making one per line costs more than the line.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    /// `text` as a JSON string literal. Printable ASCII without `"` or `\` (nearly
    /// every value: fingerprints, addresses, numbers) needs no escaping and is quoted
    /// as it is; anything else goes through Foundation's JSONEncoder, which escapes
    /// quotes, backslashes and control characters and keeps other text as UTF-8.
    static func jsonString(_ text: String) -> String {
        let plain = text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        if plain { return "\"" + text + "\"" }
        guard let data = try? encoder.encode(text) else { return "\"\"" }
        return String(decoding: data, as: UTF8.self)
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        let ms = Int(ts.tv_nsec / 1_000_000)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
            Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
            Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec), ms)
    }

    static func escapeMessage(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            if u.value < 0x20 || u.value == 0x7F { out += "\\x" + String(format: "%02x", u.value) } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    /// Quotes a value when it is empty or has spaces, quotes, `=` or control characters.
    static func quote(_ s: String) -> String {
        let needs = s.isEmpty || s.unicodeScalars.contains { $0.value <= 0x20 || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.value == 0x7F }
        guard needs else { return s }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F { out += "\\x" + String(format: "%02x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}

import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// swift-log handler that writes one line per event on stderr:
/// `TIMESTAMP LEVEL MESSAGE key=value ...`. Values with spaces, quotes or control
/// characters are quoted and escaped, so a hostile user name cannot forge a line.
public struct FivedLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level

    /// Keys printed first, in this order; the rest follow sorted.
    static let preferredOrder = [
        "user", "fingerprint", "client", "service", "form", "channel",
        "bytes_in", "bytes_out", "duration_ms", "reason",
    ]

    public init(label: String, level: Logger.Level) {
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = self.metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        var line = Self.timestamp()
        line += " "
        line += event.level.rawValue
        line += " "
        line += Self.escapeMessage("\(event.message)")
        var keys = Self.preferredOrder.filter { all[$0] != nil }
        keys += all.keys.filter { !Self.preferredOrder.contains($0) }.sorted()
        for key in keys {
            line += " \(key)=\(Self.quote("\(all[key]!)"))"
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

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        let ms = Int(ts.tv_nsec / 1_000_000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
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

/// What a client asks on the plain TCPMUX listener (RFC 1078): one line naming a
/// service, or `HELP`.
public enum TCPMUXRequest: Sendable, Equatable {
    /// `HELP` in any case: list the services offered.
    case help
    /// A valid service name.
    case service(ServiceName)
    /// Anything else; the reason is for the log (the client gets `-` and a close).
    case invalid(String)

    /// The longest name line accepted, in bytes before the line end (SPEC.md).
    public static let maximumLineLength = 64

    /// Interprets one line, without its CRLF or LF. Blanks around the name are
    /// ignored; RFC 1078 clients send nothing else.
    public init(line: some Collection<UInt8>) {
        let bytes = Array(line)
        guard bytes.count <= Self.maximumLineLength else {
            self = .invalid("line longer than \(Self.maximumLineLength) bytes")
            return
        }
        let isBlank = { (b: UInt8) in b == 0x20 || b == 0x09 }
        let trimmed = bytes.drop(while: isBlank).reversed().drop(while: isBlank).reversed()
        let text = String(decoding: trimmed, as: UTF8.self)
        if trimmed.isEmpty {
            self = .invalid("empty line")
        } else if trimmed.count == 4, text.uppercased() == "HELP" {
            self = .help
        } else if let name = ServiceName(text), ServiceName.isValid(String(decoding: trimmed, as: UTF8.self)) {
            self = .service(name)
        } else {
            self = .invalid("invalid service name '\(ServiceName.printable(String(decoding: trimmed, as: UTF8.self)))'")
        }
    }
}

/// One honoured line of an authorized_keys file: the key, what the line lets it
/// do, and where it came from (for log lines and error messages).
public struct AuthorizedKey: Sendable, Equatable {
    /// The key.
    public let blob: PublicKeyBlob
    /// The comment after the key (trailing blanks removed), possibly empty.
    /// Allow lists match it exactly.
    public let comment: String
    /// The line's options.
    public let options: KeyOptions
    /// The file the line was read from.
    public let file: String
    /// The line's number in `file`, from 1.
    public let line: Int

    /// A key as read from `file` at `line`.
    public init(blob: PublicKeyBlob, comment: String, options: KeyOptions, file: String, line: Int) {
        self.blob = blob
        self.comment = comment
        self.options = options
        self.file = file
        self.line = line
    }

    /// `file:line`, as error and log messages name the line.
    public var location: String { "\(file):\(line)" }
}

// libFuzzer harness: authorized_keys lines (AuthorizedKeysParser.parseLine) and
// their options field (KeyOptions). The file is attacker-adjacent input: users
// edit their own ~/.ssh/authorized_keys, and fived reads it on every attempt.
// Built and run by fuzz/run.sh.
import FivedCore
import Foundation

private let utc = TimeZone(identifier: "UTC")!

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAuthorizedKeys(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    var number = 0
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        number += 1
        let first = AuthorizedKeysParser.parseLine(line, file: "fuzz", lineNumber: number, timeZone: utc)
        // Parsing is a pure function of the line.
        let again = AuthorizedKeysParser.parseLine(line, file: "fuzz", lineNumber: number, timeZone: utc)
        switch (first, again) {
        case (.success(let a), .success(let b)):
            precondition(a == b, "parseLine is not deterministic")
            if let key = a {
                // A key fived honours has a fingerprint and re-encodes to valid base64.
                precondition(key.blob.fingerprint.hasPrefix("SHA256:"))
                precondition(PublicKeyBlob(base64: key.blob.base64) == key.blob, "base64 round trip")
            }
        case (.failure(let a), .failure(let b)):
            precondition(a.description == b.description, "parseLine errors differ")
            precondition(!a.description.contains("\n"), "an error message must stay one line")
        default:
            preconditionFailure("parseLine is not deterministic")
        }
    }
    // The options field alone, as the first blank-free token.
    let field = text.prefix { $0 != " " && $0 != "\t" && $0 != "\n" }
    if let options = try? KeyOptions(parsing: field, context: "fuzz", timeZone: utc) {
        _ = options
    }
    _ = KeyOptions.parseExpiryTime(text.prefix(32), timeZone: utc)
    return 0
}

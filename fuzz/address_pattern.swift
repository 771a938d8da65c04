// libFuzzer harness: from="..." pattern lists (AddressPattern) and IP address
// text (IPAddress), matched against client addresses. Input: pattern, a NUL,
// then the address text. Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAddressPattern(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let parts = bytes.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
    let patternText = String(decoding: parts[0], as: UTF8.self)
    let addressText = parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : "127.0.0.1"

    if let address = IPAddress(addressText) {
        // The text form parses back to the same address.
        precondition(IPAddress(address.description) == address, "\(addressText) -> \(address) does not round trip")
        precondition(IPAddress(bytes: address.bytes) == address)
    }
    if let pattern = try? AddressPattern(parsing: patternText, context: "fuzz") {
        precondition(pattern.text == patternText)
        let a = pattern.matches(address: addressText)
        precondition(a == pattern.matches(address: addressText), "matching is not deterministic")
        if let address = IPAddress(addressText) { _ = pattern.matches(address) }
        // A negated copy of a pattern that matches can never admit the address.
        if a, !patternText.hasPrefix("!"), !patternText.contains(","),
            let negated = try? AddressPattern(parsing: "!" + patternText, context: "fuzz")
        {
            precondition(!negated.matches(address: addressText), "!\(patternText) admits \(addressText)")
        }
    }
    return 0
}

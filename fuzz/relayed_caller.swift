// libFuzzer harness: the relayed-caller text a peer node sends in a relayed
// open's originator field (RelayedCaller(decoding:)), and the round trip
// decode(encode(x)) == x. An owner node parses it from authenticated peers
// only, but it must be safe on any bytes. Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRelayedCaller(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // Odd first bytes: treat the rest as the wire fields (tag and base64 added),
    // so the fuzzer reaches the field checks; even ones: the text as it came.
    let text: String
    if let first = bytes.first, first & 1 == 1 {
        text = RelayedCaller.tag + base64(Array(bytes.dropFirst()))
    } else {
        text = String(decoding: bytes, as: UTF8.self)
    }
    guard let caller = try? RelayedCaller(decoding: text) else { return 0 }
    precondition(RelayedCaller.isRelayed(text))
    let again = try? RelayedCaller(decoding: caller.encoded)
    precondition(again == caller, "round trip changed the caller")
    precondition(caller.user.utf8.count <= RelayedCaller.maximumUserLength && !caller.user.isEmpty)
    return 0
}

private func base64(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        let n = min(3, bytes.count - i)
        let b0 = bytes[i], b1 = n > 1 ? bytes[i + 1] : 0, b2 = n > 2 ? bytes[i + 2] : 0
        out.append(alphabet[Int(b0 >> 2)])
        out.append(alphabet[Int((b0 & 3) << 4 | b1 >> 4)])
        out.append(n > 1 ? alphabet[Int((b1 & 15) << 2 | b2 >> 6)] : UInt8(ascii: "="))
        out.append(n > 2 ? alphabet[Int(b2 & 63)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}

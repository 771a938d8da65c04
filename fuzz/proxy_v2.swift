// libFuzzer harness: PROXY v2 decoding (ProxyV2Header.decode), and the round
// trip encode(decode(x)). fived only encodes; decode is what tests and test
// backends use, so it must also be safe on any bytes. Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProxyV2(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // Half the inputs get a valid signature, so the fuzzer reaches the body.
    if let first = bytes.first, first & 1 == 1 {
        bytes = ProxyV2Header.signature + bytes.dropFirst()
    }
    switch ProxyV2Header.decode(bytes) {
    case .needMore, .invalid:
        break
    case .header(let header, let length):
        precondition(length >= 16 && length <= bytes.count, "length \(length) of \(bytes.count)")
        guard let encoded = try? header.encoded() else { break }
        guard case .header(let again, let length2) = ProxyV2Header.decode(encoded) else {
            preconditionFailure("fived's own encoding does not decode")
        }
        precondition(length2 == encoded.count)
        precondition(
            again.tlvs == header.tlvs && again.sourcePort == header.sourcePort
                && again.destinationPort == header.destinationPort, "round trip changed the header")
        precondition(
            again.sourceAddress == header.sourceAddress && again.destinationAddress == header.destinationAddress,
            "round trip changed an address: \(header.sourceAddress) \(again.sourceAddress)")
    }
    return 0
}

// libFuzzer harness: the plain TCPMUX request line (TCPMUXLineReader,
// TCPMUXRequest), read from unauthenticated clients. The first byte chooses
// how the rest is split into reads; the outcome must not depend on it.
// Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTCPMUX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let all = Array(UnsafeBufferPointer(start: data, count: size))
    let chunk = Int(all[0] % 17) + 1
    let stream = Array(all.dropFirst())

    var whole = TCPMUXLineReader()
    let once = whole.feed(stream)

    var pieces = TCPMUXLineReader()
    var outcome = TCPMUXLineReader.Outcome.needMore
    var offset = 0
    while offset < stream.count {
        let end = min(offset + chunk, stream.count)
        outcome = pieces.feed(stream[offset..<end])
        if case .needMore = outcome {
        } else {
            // What followed the line end: the rest of this read plus later reads.
            if case .complete(let request, let remainder) = outcome {
                outcome = .complete(request, remainder: remainder + Array(stream[end...]))
            }
            break
        }
        offset = end
    }
    precondition(once == outcome, "outcome depends on how the bytes were split: \(once) vs \(outcome)")

    switch once {
    case .needMore:
        precondition(!stream.contains(0x0A))
        precondition(stream.count <= TCPMUXRequest.maximumLineLength + 1)
    case .tooLong:
        break
    case .complete(let request, let remainder):
        let lineEnd = stream.firstIndex(of: 0x0A)!
        precondition(lineEnd <= TCPMUXRequest.maximumLineLength + 1, "accepted a \(lineEnd)-byte line")
        precondition(remainder == Array(stream[(lineEnd + 1)...]), "service bytes were changed")
        if case .service(let name) = request { precondition(ServiceName.isValid(name.value)) }
        if case .invalid(let why) = request {
            precondition(!why.unicodeScalars.contains { $0.value < 0x20 }, "control character in the log reason")
        }
    }
    _ = TCPMUXRequest(line: stream.prefix(200))
    return 0
}

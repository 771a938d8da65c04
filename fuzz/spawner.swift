// libFuzzer harness: the daemon-to-spawner request format (SpawnerRequest),
// which the privileged spawner parses from a daemon that may be compromised,
// and the spawner's events (SpawnerEvent), which the daemon parses. The first
// byte is the descriptor count that came with the datagram.
// Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSpawner(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let all = Array(UnsafeBufferPointer(start: data, count: size))
    let descriptors = Int(all[0] % 4)
    let datagram = Array(all.dropFirst())

    if let request = try? SpawnerRequest(decoding: datagram, descriptors: descriptors) {
        // Accepted means canonical: it encodes back to exactly these bytes and
        // carries exactly the descriptors it declares.
        precondition(request.encoded() == datagram, "a request does not re-encode to its bytes: \(request)")
        precondition(request.descriptorCount == descriptors)
        if case .spawn(_, _, let environment, _, let terminal) = request, SpawnerEnvironment.problem(in: environment, terminal: terminal) == nil {
            for entry in environment {
                let name = entry.prefix { $0 != "=" }
                precondition(SpawnerEnvironment.allowedNames.contains(String(name)) && name != "PATH", "\(name) passed the environment check")
                precondition(!entry.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F })
            }
        }
    } else {
        do {
            _ = try SpawnerRequest(decoding: datagram, descriptors: descriptors)
        } catch {
            precondition(!error.description.contains("\n"), "a refusal reason spans lines")
        }
    }
    if let event = try? SpawnerEvent(decoding: datagram, descriptors: descriptors) {
        precondition(event.encoded() == datagram, "an event does not re-encode to its bytes: \(event)")
    }
    return 0
}

// libFuzzer harness: values operators give on the command line and in the
// config (ListenAddress, Backend, AllowRule) and public key blobs as clients
// present them (PublicKeyBlob). The first byte picks the parser.
// Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFlags(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let rest = Array(bytes.dropFirst())
    let text = String(decoding: rest, as: UTF8.self)
    switch bytes[0] % 5 {
    case 0:
        if let address = try? ListenAddress(parsing: text, context: "--listen") {
            let again = try? ListenAddress(parsing: address.description, context: "--listen")
            precondition(again == address, "\(text) -> \(address) does not round trip")
        }
    case 1:
        _ = try? Backend(flagValue: text, context: "--service")
    case 2:
        if let rule = try? AllowRule(parsing: text, context: "allow") {
            _ = rule.description
        }
    case 3:
        if let blob = PublicKeyBlob(bytes: rest) {
            precondition(blob.bytes == rest)
            precondition(PublicKeyBlob(base64: blob.base64) == blob)
            precondition(blob.fingerprint.count == "SHA256:".count + 43, blob.fingerprint)
        }
    default:
        if let blob = PublicKeyBlob(base64: text) {
            precondition(PublicKeyBlob(bytes: blob.bytes) == blob)
        }
    }
    return 0
}

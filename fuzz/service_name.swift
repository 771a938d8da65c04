// libFuzzer harness: service names (ServiceName) as clients send them in
// direct-tcpip host fields, exec commands and subsystem names, and the
// printable form that goes to logs. Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServiceName(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    if let name = ServiceName(text) {
        precondition(ServiceName.isValid(text))
        precondition(name.value.utf8.count >= 1 && name.value.utf8.count <= ServiceName.maximumLength)
        precondition(ServiceName(name.value) == name, "canonical form is not a fixed point")
        precondition(ServiceName(text.uppercased()) == name, "names compare without case")
        precondition(name.value == name.value.lowercased())
    } else {
        precondition(!ServiceName.isValid(text))
        precondition((try? ServiceName(validating: text, context: "fuzz")) == nil)
    }
    // The log form: no control character, bounded length, so no forged log lines.
    let shown = ServiceName.printable(text)
    precondition(!shown.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "control character in printable()")
    precondition(shown.unicodeScalars.count <= 80 * 6 + 3, "printable() too long: \(shown.unicodeScalars.count)")
    return 0
}

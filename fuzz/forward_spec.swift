// libFuzzer harness: fived-connect's -L and -R specs (LocalForward,
// RemoteForward), typed by users and pasted from scripts. Parsing must not
// crash, must give the same answer twice, and what it accepts must read back
// the same from its own flag form. Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzForwardSpec(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)

    let local = try? LocalForward(parsing: text)
    precondition(local == (try? LocalForward(parsing: text)), "-L parse is not deterministic")
    if let local {
        let again = try? LocalForward(parsing: "\(local.bind):\(local.service)")
        precondition(again == local, "-L '\(text)' parsed as \(local), whose flag form reads back as \(String(describing: again))")
    }

    let remote = try? RemoteForward(parsing: text)
    precondition(remote == (try? RemoteForward(parsing: text)), "-R parse is not deterministic")
    if let remote {
        let again = try? RemoteForward(parsing: "\(remote.name):\(remote.target)")
        precondition(again == remote, "-R '\(text)' parsed as \(remote), whose flag form reads back as \(String(describing: again))")
    }
    return 0
}

// libFuzzer harness: the TOML config file (ConfigurationLoader.parse(toml:file:)),
// operator input read at start and on every SIGHUP.
// Built and run by fuzz/run.sh.
import FivedCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    do {
        let config = try ConfigurationLoader.parse(toml: text, file: "fuzz.toml")
        // Whatever parses has limits in range: the daemon relies on them.
        precondition(config.limits.loginGraceSeconds > 0, "login_grace_seconds \(config.limits.loginGraceSeconds)")
        precondition(config.limits.maxStartups > 0)
        precondition(config.limits.maxStartupsPerSource > 0)
        precondition(config.limits.maxChannelsPerConnection > 0)
        for (name, service) in config.services {
            precondition(name == service.name, "service keyed under another name")
            precondition(ServiceName.isValid(name.value))
        }
    } catch {
        // Every error names the file and stays one line.
        precondition(error.description.hasPrefix("fuzz.toml"), "error does not name the file: \(error.description)")
        precondition(!error.description.contains("\n"), "multi-line error: \(error.description)")
    }
    return 0
}

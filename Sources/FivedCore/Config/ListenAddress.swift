/// An address fived listens on (`listen`, `tcpmux`, `--listen`, `--tcpmux`).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// An IPv4 or IPv6 address without brackets ("0.0.0.0", "::1"), or a host name ("localhost").
    public var host: String
    /// The port; 0 lets the kernel pick one (fived logs the port it got).
    public var port: UInt16

    /// An address from parts that are already known to be valid.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `[IPV6]:PORT`. A bare IPv6 address without brackets is
    /// rejected, since its last group could not be told from the port.
    /// `context` names where the text came from ("--listen", "fived.toml:3: listen[0]").
    public init(parsing raw: String, context: String) throws(FivedCoreError) {
        let parsed = try HostPort.parse(
            raw, allowPortZero: true, code: .invalidListenAddress, context: context, example: "0.0.0.0:22 or [::]:22")
        self.init(host: parsed.host, port: parsed.port)
    }

    /// "127.0.0.1:22", "[::1]:2222": the form `init(parsing:context:)` reads.
    public var description: String { HostPort.render(host: host, port: port) }
}

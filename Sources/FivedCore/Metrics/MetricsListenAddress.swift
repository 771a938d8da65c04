extension ListenAddress {
    /// Parses `metrics_listen`: `HOST:PORT` where HOST is a numeric loopback
    /// address (`127.0.0.0/8` or `::1`), since that listener answers anyone who
    /// can connect, without authentication. Port 0 picks a free port (logged).
    /// `context` names the key ("fived.toml:4: metrics_listen").
    public init(metricsParsing raw: String, context: String) throws(FivedCoreError) {
        let parsed = try HostPort.parse(
            raw, allowPortZero: true, code: .invalidListenAddress, context: context, example: "127.0.0.1:9101")
        guard Self.isLoopback(parsed.host) else {
            throw FivedCoreError(
                .invalidListenAddress,
                "\(context): '\(DisplayText.escaped(raw))' is not a loopback address: this HTTP listener has no authentication, "
                    + "so use 127.0.0.1:PORT or [::1]:PORT, and scrape from other hosts through the metrics service (ssh -L 9101:metrics:1)")
        }
        self.init(host: parsed.host, port: parsed.port)
    }

    /// True for a numeric IPv4 address in 127.0.0.0/8, or `::1` (in any of its spellings).
    public static func isLoopback(_ host: String) -> Bool {
        if HostPort.isIPv4(Substring(host)) { return host.split(separator: ".").first == "127" }
        guard HostPort.isIPv6(Substring(host)), !host.contains("%") else { return false }
        // ::1 may be written with its zero groups: 0:0:0:0:0:0:0:1, 0::1, ...
        let groups = host.split(separator: ":", omittingEmptySubsequences: true)
        guard let last = groups.last, UInt16(last, radix: 16) == 1 else { return false }
        return groups.dropLast().allSatisfy { UInt16($0, radix: 16) == 0 }
    }
}

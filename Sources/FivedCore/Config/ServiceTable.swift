/// The table `fived --check` prints: one row per service, the built-in `help` and
/// `status` included, sorted by name, columns aligned, then one line each for the
/// listeners, files and limits in effect, and notes on anything that looks unintended.
public enum ServiceTable {
    /// Renders `configuration` as text ending in a newline.
    public static func render(_ configuration: Configuration) -> String {
        var rows: [(name: ServiceName, cells: [String])] = [
            (.help, ["help", "(built-in)", "no", "no", "no", "(any key)"]),
            (.status, ["status", "(built-in)", "no", "no", "no", allowCell(configuration.statusAllow)]),
            (.metrics, ["metrics", "(built-in)", "no", "no", "no", allowCell(configuration.metricsAllow)]),
        ]
        for service in configuration.sortedServices {
            rows.append(
                (
                    service.name,
                    [
                        service.name.value, service.backend.description, yesNo(service.proxyProtocol),
                        yesNo(service.tcpmux), yesNo(service.pty), service.allow.map(allowCell) ?? "(any key)",
                    ]
                ))
        }
        rows.sort { $0.name < $1.name }

        var lines = DisplayText.aligned([["NAME", "BACKEND", "PROXY", "TCPMUX", "PTY", "ALLOW"]] + rows.map(\.cells))
        lines.append("")
        lines.append("listen: " + list(configuration.listen.map(\.description)))
        lines.append("tcpmux: " + list(configuration.tcpmux.map(\.description)))
        lines.append(
            "tcpmux on ssh port: "
                + (configuration.tcpmuxOnSSHPort ? "yes (SSH- speaks SSH, a name line TCPMUX, 1 s of silence SSH)" : "no"))
        lines.append("host keys: " + list(configuration.hostKeys))
        lines.append("authorized_keys: " + list(configuration.authorizedKeys))
        lines.append("log level: " + configuration.logLevel.rawValue)
        lines.append("log format: " + configuration.logFormat.rawValue)
        lines.append("metrics_listen: " + (configuration.metricsListen.map(\.description) ?? "(none)"))
        let limits = configuration.limits
        lines.append("limits: " + Limits.keys.map { "\($0)=\(limits[key: $0]!)" }.joined(separator: " "))
        lines.append(
            "client alive: client_alive_interval_seconds=\(configuration.clientAliveIntervalSeconds) "
                + "client_alive_count_max=\(configuration.clientAliveCountMax)")

        let offered = configuration.sortedServices.filter(\.tcpmux)
        if !offered.isEmpty && configuration.tcpmux.isEmpty && !configuration.tcpmuxOnSSHPort {
            let names = offered.map(\.name.value).joined(separator: ", ")
            lines.append("note: tcpmux = true on \(names), but there is no tcpmux listener")
        }
        lines += sharedPortNotes(configuration, offered: offered)
        if configuration.statusAllow.isEmpty {
            lines.append("note: status has no allow list, so nobody may open it")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// What `tcpmux_on_ssh_port = true` will not do as one might expect: offer
    /// nothing, or reach a name that a TCPMUX client sends as `SSH-...`.
    private static func sharedPortNotes(_ configuration: Configuration, offered: [ServiceConfig]) -> [String] {
        guard configuration.tcpmuxOnSSHPort else { return [] }
        if offered.isEmpty {
            return ["note: tcpmux_on_ssh_port = true, but no service has tcpmux = true: TCPMUX clients on the SSH port are refused"]
        }
        let sshLike = offered.filter { $0.name.value.lowercased().hasPrefix("ssh-") }.map(\.name.value)
        guard !sshLike.isEmpty else { return [] }
        return [
            "note: on the SSH port, a TCPMUX request that begins with uppercase 'SSH-' is taken for SSH: "
                + "clients must name \(sshLike.joined(separator: ", ")) in lowercase (or on the tcpmux listener)"
        ]
    }

    private static func allowCell(_ rules: [AllowRule]) -> String {
        rules.isEmpty ? "(nobody)" : rules.map { DisplayText.escaped($0.description) }.joined(separator: ", ")
    }

    private static func list(_ items: [String]) -> String {
        items.isEmpty ? "(none)" : items.map { DisplayText.escaped($0) }.joined(separator: ", ")
    }

    private static func yesNo(_ flag: Bool) -> String { flag ? "yes" : "no" }
}

/// The one decision on every channel open and publish request (SPEC.md, "Access
/// control from authorized_keys"): an authorized_keys line means in fived what
/// it means in sshd, with the destination host read as the service name.
///
/// In order:
/// 1. A session form (exec, subsystem, shell) on a key with `command="NAME"`,
///    or with a certificate whose `force-command` is NAME, goes to NAME whatever
///    was asked, even under `restrict` or without `permit-port-forwarding`,
///    bypassing `permitopen` (as a forced command bypasses it in sshd). Should
///    both be present and differ (`CertificateCheck` refuses such a login), the
///    open is refused.
/// 2. Otherwise a shell is answered with `help`, and `help` may always be asked.
/// 3. `restrict` / `no-port-forwarding` (unless a later `port-forwarding`) deny
///    every other open, and so does a certificate without the
///    `permit-port-forwarding` extension; `permitopen` entries, when present,
///    limit the key to those names, comparing the port for direct-tcpip only.
/// 4. The target must exist (`status` and `metrics` are built in) and its allow
///    list must admit the caller; `status` is admitted only by `statusAllow`,
///    `metrics` (opened as a service, `.open(.metrics)`) only by `metricsAllow`.
///
/// Each source of restriction (certificate, authorized_keys line, allow list)
/// can only take away from what the others allow.
public enum AccessPolicy {
    /// The only reply a refused client sees, for unknown and forbidden names alike.
    public static let refusalText = "service not available"

    /// Decides one channel open. `requested` is the name as it came off the wire
    /// (nil for a shell), `requestedPort` the direct-tcpip port (nil otherwise),
    /// `services` looks up configured services (nil for unknown names) and
    /// `statusAllow` is the status table's allow list and `metricsAllow` the
    /// Prometheus endpoint's (empty admits nobody, so a caller that passes none
    /// refuses `metrics`).
    public static func decide(
        caller: Caller, form: ChannelForm, requested: String?, requestedPort: UInt32?,
        services: (ServiceName) -> ServiceAccess?, statusAllow: [AllowRule], metricsAllow: [AllowRule] = []
    ) -> OpenDecision {
        decide(
            caller: caller, form: form, requested: requested, requestedPort: requestedPort, anyPort: false,
            services: services, builtIn: BuiltInAccess(status: statusAllow, metrics: metricsAllow))
    }

    /// The allow lists of the built-in services.
    private struct BuiltInAccess {
        let status: [AllowRule]
        let metrics: [AllowRule]
    }

    private static func decide(
        caller: Caller, form: ChannelForm, requested: String?, requestedPort: UInt32?, anyPort: Bool,
        services: (ServiceName) -> ServiceAccess?, builtIn: BuiltInAccess
    ) -> OpenDecision {
        let options = caller.key.options
        let certificate = caller.certificate?.restrictions
        if let line = options.command, let cert = certificate?.forceCommand, !line.utf8.elementsEqual(cert.utf8) {
            if form.isSession { return .refused(.forcedCommandsDiffer(line: line, certificate: cert)) }
        }
        if form.isSession, let forced = certificate?.forceCommand ?? options.command {
            guard let name = ServiceName(forced) else {
                return .refused(.invalidForcedCommand(ServiceName.printable(forced)))
            }
            return target(name, caller: caller, services: services, builtIn: builtIn)
        }
        if form == .shell { return .help }
        guard let raw = requested else { return .refused(.noServiceName) }
        guard let name = ServiceName(raw) else { return .refused(.invalidName(ServiceName.printable(raw))) }
        if name == .help { return .help }
        guard options.portForwarding else { return .refused(.forwardingDisabled) }
        if let certificate, !certificate.permitPortForwarding { return .refused(.certificateForbidsForwarding) }
        if !options.permitOpen.isEmpty {
            let permitted = options.permitOpen.contains { permit in
                guard ServiceName(permit.host) == name else { return false }
                guard form == .directTCPIP, !anyPort else { return true }
                switch permit.port {
                case .any: return true
                case .number(let n): return requestedPort == UInt32(n)
                }
            }
            guard permitted else {
                return .refused(.notInPermitOpen(name, port: form == .directTCPIP ? requestedPort : nil))
            }
        }
        return target(name, caller: caller, services: services, builtIn: builtIn)
    }

    private static func target(
        _ name: ServiceName, caller: Caller, services: (ServiceName) -> ServiceAccess?, builtIn: BuiltInAccess
    ) -> OpenDecision {
        if name == .help { return .help }
        if name == .status {
            return allowListAdmits(builtIn.status, caller: caller) ? .status : .refused(.statusNotAllowed)
        }
        if name == .metrics {
            return allowListAdmits(builtIn.metrics, caller: caller) ? .open(.metrics) : .refused(.metricsNotAllowed)
        }
        guard let service = services(name) else { return .refused(.unknownService(name)) }
        if let allow = service.allow, !allowListAdmits(allow, caller: caller) {
            return .refused(.notAllowed(name))
        }
        return .open(name)
    }

    /// The names `help` lists for `caller`, sorted: each service (and `status`,
    /// `metrics`) that some form of open would reach, ignoring direct-tcpip ports.
    public static func visibleServices(
        caller: Caller, services: [ServiceAccess], statusAllow: [AllowRule], metricsAllow: [AllowRule] = []
    ) -> [ServiceName] {
        let builtIn = BuiltInAccess(status: statusAllow, metrics: metricsAllow)
        var byName: [ServiceName: ServiceAccess] = [:]
        for service in services where !service.name.isReserved { byName[service.name] = service }
        let lookup = { (name: ServiceName) in byName[name] }
        var visible: [ServiceName] = []
        for name in byName.keys.sorted() + [.status, .metrics] {
            let reachable = [ChannelForm.directTCPIP, .exec].contains { form in
                switch decide(
                    caller: caller, form: form, requested: name.value, requestedPort: nil, anyPort: true,
                    services: lookup, builtIn: builtIn)
                {
                case .open(let opened): return opened == name
                case .status: return name == .status
                default: return false
                }
            }
            if reachable { visible.append(name) }
        }
        return visible.sorted()
    }

    /// Whether a `pty-req` is granted on a session channel, which arrives before
    /// the channel names its service: the key's options allow a terminal
    /// (`no-pty`, and `restrict` without a later `pty`, deny it, as in sshd's
    /// auth-options.c), a certificate carries the `permit-pty` extension, and
    /// some service in `terminalServices` (those with `pty = true`) is one an
    /// exec request of this caller would open (under `command=` or
    /// `force-command`, the forced service must be one of them).
    public static func grantsTerminal(
        caller: Caller, terminalServices: [ServiceName], services: (ServiceName) -> ServiceAccess?, statusAllow: [AllowRule]
    ) -> Bool {
        guard caller.key.options.pty else { return false }
        if let certificate = caller.certificate, !certificate.restrictions.permitPTY { return false }
        return terminalServices.contains { name in
            decide(caller: caller, form: .exec, requested: name.value, requestedPort: nil, services: services, statusAllow: statusAllow)
                == .open(name)
        }
    }

    /// Decides a request to publish `name` (a `tcpip-forward` bind address):
    /// the key's port forwarding must be on (and, for a certificate, its
    /// `permit-port-forwarding` extension present) and one of its `permitlisten` hosts
    /// must match the name (wildcards as in sshd, without case; a bare port
    /// entry names no host and so allows no name; the port is ignored). Reserved names never.
    public static func mayPublish(caller: Caller, name raw: String) -> PublishDecision {
        guard let name = ServiceName(raw) else { return .refused(.invalidName(ServiceName.printable(raw))) }
        guard !name.isReserved else { return .refused(.reservedName(name)) }
        let options = caller.key.options
        guard options.portForwarding else { return .refused(.forwardingDisabled) }
        if let certificate = caller.certificate, !certificate.restrictions.permitPortForwarding {
            return .refused(.certificateForbidsForwarding)
        }
        let target = Array(name.value.utf8)
        let permitted = options.permitListen.contains { permit in
            Wildcard.matches(target, pattern: permit.host.utf8.map(AddressPattern.asciiLower))
        }
        return permitted ? .publish(name) : .refused(.notInPermitListen(name))
    }

    /// True when one of `rules` admits `caller`: its key's fingerprint (for a
    /// certificate, the certified key's), its SSH user name (`user:NAME`), or its
    /// key's comment (for a certificate, the admitting line's), each compared
    /// exactly; and, for a certificate only, its matched principal
    /// (`principal:NAME`), key ID (`key-id:ID`) or CA fingerprint (`ca:SHA256:...`),
    /// compared byte for byte. The certificate entries never admit a plain key.
    public static func allowListAdmits(_ rules: [AllowRule], caller: Caller) -> Bool {
        rules.contains { rule in
            switch rule {
            case .fingerprint(let fingerprint): return fingerprint == caller.key.blob.fingerprint
            case .user(let user): return user == caller.user
            case .comment(let comment): return comment == caller.key.comment
            case .principal(let name): return caller.certificate.map { $0.principal.utf8.elementsEqual(name.utf8) } ?? false
            case .keyID(let id): return caller.certificate.map { $0.keyID.utf8.elementsEqual(id.utf8) } ?? false
            case .certificateAuthority(let fingerprint): return caller.certificate?.caFingerprint == fingerprint
            }
        }
    }
}

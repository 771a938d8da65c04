import Foundation
import Testing
@testable import FivedCore

/// Every authorized_keys option that bears on opening a service, alone and in
/// combination, against every channel form, as one table.
@Suite struct AccessPolicyTests {
    static let alice = TestKeys.alice
    static let bob = TestKeys.bob

    static let services: [ServiceAccess] = [
        ServiceAccess(name: ServiceName("web")!, allow: nil),
        ServiceAccess(name: ServiceName("db")!, allow: [.comment("alice@laptop")]),
        ServiceAccess(name: ServiceName("admin")!, allow: [.user("root")]),
        ServiceAccess(name: ServiceName("fp")!, allow: [.fingerprint(alice.fingerprint)]),
        ServiceAccess(name: ServiceName("closed")!, allow: []),
    ]
    static let statusAllow: [AllowRule] = [.user("root")]

    static func caller(_ options: String, key: TestKeys.Key = alice, user: String = "alice") -> Caller {
        let line = options.isEmpty ? key.line : "\(options) \(key.line)"
        guard case .success(let parsed?) = AuthorizedKeysParser.parseLine(Substring(line), file: "ak", lineNumber: 1, timeZone: TimeZone(identifier: "UTC")!)
        else { fatalError("test line does not parse: \(line)") }
        return Caller(user: user, key: parsed, address: "192.0.2.7", port: 40000)
    }

    static func name(_ s: String) -> ServiceName { ServiceName(s)! }

    struct Row: CustomTestStringConvertible, Sendable {
        var options: String
        var key: String = "alice"
        var user: String = "alice"
        var form: ChannelForm
        var requested: String?
        var port: UInt32? = nil
        var expected: OpenDecision
        var testDescription: String {
            "[\(options)] \(user)/\(key) \(form.rawValue) \(requested ?? "nil")\(port.map { ":\($0)" } ?? "") -> \(expected)"
        }
    }

    static func open(_ s: String) -> OpenDecision { .open(name(s)) }
    static func refused(_ r: OpenRefusal) -> OpenDecision { .refused(r) }

    static let rows: [Row] = [
        // no options: every form reaches every service its allow list admits
        Row(options: "", form: .exec, requested: "web", expected: open("web")),
        Row(options: "", form: .subsystem, requested: "WEB", expected: open("web")),
        Row(options: "", form: .directTCPIP, requested: "web", port: 1, expected: open("web")),
        Row(options: "", form: .directTCPIP, requested: "Web", port: 8080, expected: open("web")),
        Row(options: "", form: .shell, requested: nil, expected: .help),
        Row(options: "", form: .exec, requested: "help", expected: .help),
        Row(options: "", form: .subsystem, requested: "HELP", expected: .help),
        Row(options: "", form: .directTCPIP, requested: "help", port: 1, expected: .help),
        Row(options: "", form: .exec, requested: "nope", expected: refused(.unknownService(name("nope")))),
        Row(options: "", form: .directTCPIP, requested: "nope", port: 1, expected: refused(.unknownService(name("nope")))),
        Row(options: "", form: .exec, requested: "bad name", expected: refused(.invalidName("bad name"))),
        Row(options: "", form: .exec, requested: "", expected: refused(.invalidName(""))),
        Row(options: "", form: .exec, requested: "web\n", expected: refused(.invalidName("web\\x0a"))),
        Row(options: "", form: .directTCPIP, requested: "127.0.0.1:80", port: 1, expected: refused(.invalidName("127.0.0.1:80"))),
        Row(options: "", form: .exec, requested: String(repeating: "a", count: 65), expected: refused(.invalidName(String(repeating: "a", count: 65)))),
        Row(options: "", form: .exec, requested: nil, expected: refused(.noServiceName)),
        Row(options: "", form: .subsystem, requested: nil, expected: refused(.noServiceName)),
        Row(options: "", form: .directTCPIP, requested: nil, port: 1, expected: refused(.noServiceName)),
        // allow lists: comment, user, fingerprint, empty
        Row(options: "", form: .exec, requested: "db", expected: open("db")),
        Row(options: "", key: "bob", form: .exec, requested: "db", expected: refused(.notAllowed(name("db")))),
        Row(options: "", form: .exec, requested: "admin", expected: refused(.notAllowed(name("admin")))),
        Row(options: "", user: "root", form: .exec, requested: "admin", expected: open("admin")),
        Row(options: "", key: "bob", user: "root", form: .directTCPIP, requested: "admin", port: 1, expected: open("admin")),
        Row(options: "", form: .exec, requested: "fp", expected: open("fp")),
        Row(options: "", key: "bob", form: .exec, requested: "fp", expected: refused(.notAllowed(name("fp")))),
        Row(options: "", user: "root", form: .exec, requested: "closed", expected: refused(.notAllowed(name("closed")))),
        // status: only its own allow list admits
        Row(options: "", form: .exec, requested: "status", expected: refused(.statusNotAllowed)),
        Row(options: "", user: "root", form: .exec, requested: "Status", expected: .status),
        Row(options: "", user: "root", form: .directTCPIP, requested: "status", port: 1, expected: .status),
        // restrict and no-port-forwarding deny every open; help stays available
        Row(options: "restrict", form: .exec, requested: "web", expected: refused(.forwardingDisabled)),
        Row(options: "restrict", form: .subsystem, requested: "web", expected: refused(.forwardingDisabled)),
        Row(options: "restrict", form: .directTCPIP, requested: "web", port: 1, expected: refused(.forwardingDisabled)),
        Row(options: "restrict", form: .exec, requested: "nope", expected: refused(.forwardingDisabled)),
        Row(options: "restrict", user: "root", form: .exec, requested: "status", expected: refused(.forwardingDisabled)),
        Row(options: "restrict", form: .shell, requested: nil, expected: .help),
        Row(options: "restrict", form: .exec, requested: "help", expected: .help),
        Row(options: "restrict", form: .directTCPIP, requested: "help", port: 1, expected: .help),
        Row(options: "restrict", form: .exec, requested: "bad name", expected: refused(.invalidName("bad name"))),
        Row(options: "no-port-forwarding", form: .exec, requested: "web", expected: refused(.forwardingDisabled)),
        Row(options: "no-port-forwarding", form: .directTCPIP, requested: "web", port: 1, expected: refused(.forwardingDisabled)),
        Row(options: "NO-PORT-FORWARDING", form: .subsystem, requested: "web", expected: refused(.forwardingDisabled)),
        Row(options: "no-port-forwarding", form: .shell, requested: nil, expected: .help),
        // port-forwarding after restrict re-enables; before it does not
        Row(options: "restrict,port-forwarding", form: .exec, requested: "web", expected: open("web")),
        Row(options: "restrict,port-forwarding", form: .directTCPIP, requested: "web", port: 1, expected: open("web")),
        Row(options: "port-forwarding,restrict", form: .exec, requested: "web", expected: refused(.forwardingDisabled)),
        Row(options: "no-port-forwarding,port-forwarding", form: .exec, requested: "web", expected: open("web")),
        Row(options: "port-forwarding,no-port-forwarding", form: .exec, requested: "web", expected: refused(.forwardingDisabled)),
        Row(options: "restrict,pty,agent-forwarding,x11-forwarding,user-rc", form: .exec, requested: "web", expected: refused(.forwardingDisabled)),
        // permitopen: names for every form, ports for direct-tcpip only
        Row(options: #"permitopen="web:1""#, form: .directTCPIP, requested: "web", port: 1, expected: open("web")),
        Row(options: #"permitopen="web:1""#, form: .directTCPIP, requested: "web", port: 2, expected: refused(.notInPermitOpen(name("web"), port: 2))),
        Row(options: #"permitopen="web:1""#, form: .directTCPIP, requested: "web", port: nil, expected: refused(.notInPermitOpen(name("web"), port: nil))),
        Row(options: #"permitopen="web:1""#, form: .exec, requested: "web", expected: open("web")),
        Row(options: #"permitopen="web:1""#, form: .subsystem, requested: "WEB", expected: open("web")),
        Row(options: #"permitopen="web:1""#, form: .exec, requested: "db", expected: refused(.notInPermitOpen(name("db"), port: nil))),
        Row(options: #"permitopen="web:1""#, form: .directTCPIP, requested: "db", port: 1, expected: refused(.notInPermitOpen(name("db"), port: 1))),
        Row(options: #"permitopen="web:1""#, form: .exec, requested: "nope", expected: refused(.notInPermitOpen(name("nope"), port: nil))),
        Row(options: #"permitopen="web:1""#, form: .directTCPIP, requested: "help", port: 7, expected: .help),
        Row(options: #"permitopen="web:1""#, form: .shell, requested: nil, expected: .help),
        Row(options: #"permitopen="web:*""#, form: .directTCPIP, requested: "web", port: 65535, expected: open("web")),
        Row(options: #"permitopen="web:*""#, form: .directTCPIP, requested: "web", port: 70000, expected: open("web")),
        Row(options: #"permitopen="WEB:1""#, form: .directTCPIP, requested: "web", port: 1, expected: open("web")),
        Row(options: #"permitopen="web/1""#, form: .directTCPIP, requested: "web", port: 1, expected: open("web")),
        Row(options: #"permitopen="web:1",permitopen="db:2""#, form: .directTCPIP, requested: "db", port: 2, expected: open("db")),
        Row(
            options: #"permitopen="web:1",permitopen="db:2""#, form: .directTCPIP, requested: "db", port: 1,
            expected: refused(.notInPermitOpen(name("db"), port: 1))),
        Row(options: #"permitopen="nope:1""#, form: .directTCPIP, requested: "nope", port: 1, expected: refused(.unknownService(name("nope")))),
        Row(options: #"permitopen="w*:1""#, form: .directTCPIP, requested: "web", port: 1, expected: refused(.notInPermitOpen(name("web"), port: 1))),
        Row(options: #"permitopen="192.0.2.1:80""#, form: .exec, requested: "web", expected: refused(.notInPermitOpen(name("web"), port: nil))),
        Row(options: #"permitopen="db:1""#, key: "bob", form: .directTCPIP, requested: "db", port: 1, expected: refused(.notAllowed(name("db")))),
        Row(options: #"permitopen="status:*""#, user: "root", form: .exec, requested: "status", expected: .status),
        Row(options: #"permitopen="web:*""#, user: "root", form: .exec, requested: "status", expected: refused(.notInPermitOpen(name("status"), port: nil))),
        Row(options: #"restrict,permitopen="web:1""#, form: .directTCPIP, requested: "web", port: 1, expected: refused(.forwardingDisabled)),
        Row(options: #"restrict,port-forwarding,permitopen="web:1""#, form: .directTCPIP, requested: "web", port: 1, expected: open("web")),
        Row(
            options: #"restrict,port-forwarding,permitopen="web:1""#, form: .directTCPIP, requested: "db", port: 1,
            expected: refused(.notInPermitOpen(name("db"), port: 1))),
        // command= forces every session form, even under restrict, and bypasses permitopen
        Row(options: #"command="web""#, form: .exec, requested: "db", expected: open("web")),
        Row(options: #"command="web""#, form: .subsystem, requested: "anything", expected: open("web")),
        Row(options: #"command="web""#, form: .shell, requested: nil, expected: open("web")),
        Row(options: #"command="web""#, form: .exec, requested: nil, expected: open("web")),
        Row(options: #"command="web""#, form: .exec, requested: "bad name", expected: open("web")),
        Row(options: #"command="web""#, form: .exec, requested: "help", expected: open("web")),
        Row(options: #"command="WEB""#, form: .exec, requested: "x", expected: open("web")),
        Row(options: #"restrict,command="web""#, form: .exec, requested: "x", expected: open("web")),
        Row(options: #"restrict,command="web""#, form: .shell, requested: nil, expected: open("web")),
        Row(options: #"no-port-forwarding,command="web""#, form: .subsystem, requested: "x", expected: open("web")),
        Row(options: #"command="web",permitopen="db:1""#, form: .exec, requested: "db", expected: open("web")),
        // ... but not direct-tcpip, which follows the other options
        Row(options: #"command="web""#, form: .directTCPIP, requested: "db", port: 1, expected: open("db")),
        Row(options: #"restrict,command="web""#, form: .directTCPIP, requested: "web", port: 1, expected: refused(.forwardingDisabled)),
        Row(
            options: #"command="web",permitopen="db:1""#, form: .directTCPIP, requested: "web", port: 1,
            expected: refused(.notInPermitOpen(name("web"), port: 1))),
        Row(options: #"command="web",permitopen="db:1""#, form: .directTCPIP, requested: "db", port: 1, expected: open("db")),
        // the forced target still needs its allow list, and must exist and be a name
        Row(options: #"command="db""#, key: "bob", form: .exec, requested: "db", expected: refused(.notAllowed(name("db")))),
        Row(options: #"command="nope""#, form: .shell, requested: nil, expected: refused(.unknownService(name("nope")))),
        Row(options: #"command="dump /home""#, form: .exec, requested: "web", expected: refused(.invalidForcedCommand("dump /home"))),
        Row(options: #"command="""#, form: .shell, requested: nil, expected: refused(.invalidForcedCommand(""))),
        Row(options: #"command="help""#, form: .exec, requested: "web", expected: .help),
        Row(options: #"restrict,command="help""#, form: .shell, requested: nil, expected: .help),
        Row(options: #"command="status""#, form: .exec, requested: nil, expected: refused(.statusNotAllowed)),
        Row(options: #"restrict,command="status""#, user: "root", form: .exec, requested: nil, expected: .status),
        // options fived ignores, and auth-time options, change nothing here
        Row(
            options: #"no-pty,no-agent-forwarding,no-x11-forwarding,no-user-rc,environment="A=b",tunnel="1",verify-required,no-touch-required"#,
            form: .exec, requested: "web", expected: open("web")),
        Row(options: #"from="10.0.0.0/8",expiry-time="20000101Z""#, form: .exec, requested: "web", expected: open("web")),
        // permitlisten grants publishing, not opening
        Row(options: #"restrict,permitlisten="web:*""#, form: .exec, requested: "web", expected: refused(.forwardingDisabled)),
        Row(options: #"permitlisten="pub:1""#, form: .directTCPIP, requested: "web", port: 1, expected: open("web")),
    ]

    @Test(arguments: rows)
    func decide(_ row: Row) {
        let key = row.key == "bob" ? Self.bob : Self.alice
        let byName = Dictionary(uniqueKeysWithValues: Self.services.map { ($0.name, $0) })
        let decision = AccessPolicy.decide(
            caller: Self.caller(row.options, key: key, user: row.user), form: row.form, requested: row.requested,
            requestedPort: row.port, services: { byName[$0] }, statusAllow: Self.statusAllow)
        #expect(decision == row.expected)
    }

    @Test func refusalTextIsOneGenericLine() {
        #expect(AccessPolicy.refusalText == "service not available")
        // the reasons differ only in the log
        #expect(OpenRefusal.unknownService(Self.name("x")).description != OpenRefusal.notAllowed(Self.name("x")).description)
    }

    struct VisibleRow: CustomTestStringConvertible, Sendable {
        var options: String
        var key: String = "alice"
        var user: String = "alice"
        var expected: [String]
        var testDescription: String { "[\(options)] \(user)/\(key) -> \(expected)" }
    }

    static let visibleRows: [VisibleRow] = [
        VisibleRow(options: "", expected: ["db", "fp", "web"]),
        VisibleRow(options: "", user: "root", expected: ["admin", "db", "fp", "status", "web"]),
        VisibleRow(options: "", key: "bob", expected: ["web"]),
        VisibleRow(options: "restrict", user: "root", expected: []),
        VisibleRow(options: "no-port-forwarding", expected: []),
        VisibleRow(options: "restrict,port-forwarding", expected: ["db", "fp", "web"]),
        VisibleRow(options: #"restrict,command="web""#, expected: ["web"]),
        VisibleRow(options: #"command="nope""#, expected: ["db", "fp", "web"]),
        VisibleRow(options: #"restrict,command="nope""#, expected: []),
        VisibleRow(options: #"permitopen="web:1",permitopen="admin:*""#, expected: ["web"]),
        VisibleRow(options: #"permitopen="web:9",command="db""#, expected: ["db", "web"]),
        VisibleRow(options: #"permitopen="status:1""#, user: "root", expected: ["status"]),
        VisibleRow(options: #"restrict,command="status""#, user: "root", expected: ["status"]),
    ]

    @Test(arguments: visibleRows)
    func visible(_ row: VisibleRow) {
        let key = row.key == "bob" ? Self.bob : Self.alice
        let names = AccessPolicy.visibleServices(
            caller: Self.caller(row.options, key: key, user: row.user), services: Self.services, statusAllow: Self.statusAllow)
        #expect(names.map(\.value) == row.expected)
    }

    @Test func visibleIgnoresReservedAndDuplicateEntries() {
        let services =
            Self.services + [
                ServiceAccess(name: .help, allow: nil), ServiceAccess(name: .status, allow: nil),
                ServiceAccess(name: Self.name("WEB"), allow: nil),
            ]
        let names = AccessPolicy.visibleServices(caller: Self.caller(""), services: services, statusAllow: [])
        #expect(names.map(\.value) == ["db", "fp", "web"])
    }

    struct PublishRow: CustomTestStringConvertible, Sendable {
        var options: String
        var name: String
        var expected: PublishDecision
        var testDescription: String { "[\(options)] publish \(name) -> \(expected)" }
    }

    static let publishRows: [PublishRow] = [
        PublishRow(options: #"permitlisten="pub:1""#, name: "pub", expected: .publish(name("pub"))),
        PublishRow(options: #"permitlisten="pub:1""#, name: "PUB", expected: .publish(name("pub"))),
        PublishRow(options: #"permitlisten="PUB:*""#, name: "pub", expected: .publish(name("pub"))),
        PublishRow(options: #"permitlisten="pub:1""#, name: "other", expected: .refused(.notInPermitListen(name("other")))),
        PublishRow(options: #"permitlisten="pub-*:*""#, name: "pub-x", expected: .publish(name("pub-x"))),
        PublishRow(options: #"permitlisten="pub-*:*""#, name: "pubx", expected: .refused(.notInPermitListen(name("pubx")))),
        PublishRow(options: #"permitlisten="pub-?:*""#, name: "pub-1", expected: .publish(name("pub-1"))),
        PublishRow(options: #"permitlisten="a:1",permitlisten="b:2""#, name: "b", expected: .publish(name("b"))),
        PublishRow(options: #"permitlisten="8080""#, name: "anything", expected: .refused(.notInPermitListen(name("anything")))),
        PublishRow(options: #"permitlisten="[::1]:22000""#, name: "pub", expected: .refused(.notInPermitListen(name("pub")))),
        PublishRow(options: "", name: "pub", expected: .refused(.notInPermitListen(name("pub")))),
        PublishRow(options: #"permitopen="pub:1""#, name: "pub", expected: .refused(.notInPermitListen(name("pub")))),
        PublishRow(options: #"restrict,permitlisten="pub:1""#, name: "pub", expected: .refused(.forwardingDisabled)),
        PublishRow(options: #"no-port-forwarding,permitlisten="pub:1""#, name: "pub", expected: .refused(.forwardingDisabled)),
        PublishRow(options: #"restrict,port-forwarding,permitlisten="pub:1""#, name: "pub", expected: .publish(name("pub"))),
        PublishRow(options: #"command="web",permitlisten="pub:*""#, name: "pub", expected: .publish(name("pub"))),
        PublishRow(options: #"permitlisten="*:*""#, name: "help", expected: .refused(.reservedName(.help))),
        PublishRow(options: #"permitlisten="*:*""#, name: "Status", expected: .refused(.reservedName(.status))),
        PublishRow(options: #"permitlisten="*:*""#, name: "bad name", expected: .refused(.invalidName("bad name"))),
        PublishRow(options: #"permitlisten="*:*""#, name: "", expected: .refused(.invalidName(""))),
        PublishRow(options: #"permitlisten="*:*""#, name: "localhost", expected: .publish(name("localhost"))),
    ]

    @Test(arguments: publishRows)
    func publish(_ row: PublishRow) {
        #expect(AccessPolicy.mayPublish(caller: Self.caller(row.options), name: row.name) == row.expected)
    }
}

/// The same decision for callers who logged in with a certificate: its
/// force-command and permit-port-forwarding apply on top of the line's options,
/// and allow lists can name its principal, key ID or CA.
@Suite struct AccessPolicyCertificateTests {
    static let caFingerprint = TestKeys.ca.blob.fingerprint
    static let services: [ServiceAccess] = [
        ServiceAccess(name: ServiceName("web")!, allow: nil),
        ServiceAccess(name: ServiceName("ops")!, allow: [.principal("ops")]),
        ServiceAccess(name: ServiceName("laptop")!, allow: [.keyID("alice-laptop")]),
        ServiceAccess(name: ServiceName("ca")!, allow: [.certificateAuthority(caFingerprint)]),
        ServiceAccess(name: ServiceName("backup")!, allow: nil),
    ]

    /// A certificate caller: `permit` is permit-port-forwarding, `force` force-command.
    static func caller(_ options: String = "", principal: String = "alice", permit: Bool = true, force: String? = nil, certificate: Bool = true) -> Caller {
        let base = AccessPolicyTests.caller(options)
        guard certificate else { return base }
        var restrictions = CertificateRestrictions()
        restrictions.permitPortForwarding = permit
        restrictions.forceCommand = force
        let identity = CertificateIdentity(keyID: "alice-laptop", serial: 42, principal: principal, caFingerprint: caFingerprint, restrictions: restrictions)
        return Caller(user: base.user, key: base.key, address: base.address, port: base.port, certificate: identity)
    }

    static func decide(_ caller: Caller, _ form: ChannelForm, _ requested: String?, port: UInt32? = nil) -> OpenDecision {
        let byName = Dictionary(uniqueKeysWithValues: services.map { ($0.name, $0) })
        return AccessPolicy.decide(
            caller: caller, form: form, requested: requested, requestedPort: port, services: { byName[$0] }, statusAllow: [.keyID("alice-laptop")])
    }

    static func open(_ s: String) -> OpenDecision { .open(ServiceName(s)!) }

    @Test func permitPortForwardingIsNeededForOpens() {
        #expect(Self.decide(Self.caller(), .exec, "web") == Self.open("web"))
        #expect(Self.decide(Self.caller(), .directTCPIP, "web", port: 1) == Self.open("web"))
        let denied = Self.caller(permit: false)
        #expect(Self.decide(denied, .exec, "web") == .refused(.certificateForbidsForwarding))
        #expect(Self.decide(denied, .subsystem, "web") == .refused(.certificateForbidsForwarding))
        #expect(Self.decide(denied, .directTCPIP, "web", port: 1) == .refused(.certificateForbidsForwarding))
        #expect(Self.decide(denied, .shell, nil) == .help)
        #expect(Self.decide(denied, .exec, "help") == .help)
        #expect(AccessPolicy.visibleServices(caller: denied, services: Self.services, statusAllow: []) == [])
        #expect(
            OpenRefusal.certificateForbidsForwarding.description
                == "the certificate has no permit-port-forwarding extension, which opening services needs")
        // the line's restrict still wins over the certificate's permission
        #expect(Self.decide(Self.caller("restrict"), .exec, "web") == .refused(.forwardingDisabled))
        #expect(Self.decide(Self.caller("restrict,port-forwarding"), .exec, "web") == Self.open("web"))
        // and permitopen still limits names
        #expect(Self.decide(Self.caller(#"permitopen="ops:*""#), .exec, "web") == .refused(.notInPermitOpen(ServiceName("web")!, port: nil)))
    }

    @Test func forceCommandIsTheForcedService() {
        let forced = Self.caller(permit: false, force: "backup")
        #expect(Self.decide(forced, .exec, "web") == Self.open("backup"))
        #expect(Self.decide(forced, .shell, nil) == Self.open("backup"))
        #expect(Self.decide(forced, .subsystem, "help") == Self.open("backup"))
        #expect(Self.decide(forced, .directTCPIP, "backup", port: 1) == .refused(.certificateForbidsForwarding))
        #expect(AccessPolicy.visibleServices(caller: forced, services: Self.services, statusAllow: []) == [ServiceName("backup")!])
        #expect(Self.decide(Self.caller(force: "bad name"), .exec, "web") == .refused(.invalidForcedCommand("bad name")))
        // with the line's command=: equal is fine, different is refused (CertificateCheck refuses such a login)
        #expect(Self.decide(Self.caller(#"command="backup""#, force: "backup"), .exec, "web") == Self.open("backup"))
        #expect(
            Self.decide(Self.caller(#"command="web""#, force: "backup"), .exec, "web")
                == .refused(.forcedCommandsDiffer(line: "web", certificate: "backup")))
        // the line's command= alone still forces
        #expect(Self.decide(Self.caller(#"command="backup""#, permit: false), .exec, "web") == Self.open("backup"))
    }

    @Test func certificateAllowEntries() {
        #expect(Self.decide(Self.caller(principal: "ops"), .exec, "ops") == Self.open("ops"))
        #expect(Self.decide(Self.caller(principal: "alice"), .exec, "ops") == .refused(.notAllowed(ServiceName("ops")!)))
        #expect(Self.decide(Self.caller(), .exec, "laptop") == Self.open("laptop"))
        #expect(Self.decide(Self.caller(), .exec, "ca") == Self.open("ca"))
        #expect(Self.decide(Self.caller(), .exec, "status") == .status)
        // never a plain key, whatever its comment or user
        let plain = Self.caller(certificate: false)
        for name in ["ops", "laptop", "ca"] {
            #expect(Self.decide(plain, .exec, name) == .refused(.notAllowed(ServiceName(name)!)))
        }
        #expect(Self.decide(plain, .exec, "status") == .refused(.statusNotAllowed))
        // principals compare byte for byte
        #expect(!AccessPolicy.allowListAdmits([.principal("jos\u{E9}")], caller: Self.caller(principal: "jose\u{301}")))
        #expect(AccessPolicy.allowListAdmits([.principal("jos\u{E9}")], caller: Self.caller(principal: "jos\u{E9}")))
    }

    @Test func publishingNeedsPermitPortForwarding() {
        let line = #"permitlisten="pub:*""#
        #expect(AccessPolicy.mayPublish(caller: Self.caller(line), name: "pub") == .publish(ServiceName("pub")!))
        #expect(AccessPolicy.mayPublish(caller: Self.caller(line, permit: false), name: "pub") == .refused(.certificateForbidsForwarding))
        #expect(AccessPolicy.mayPublish(caller: Self.caller("restrict," + line), name: "pub") == .refused(.forwardingDisabled))
        #expect(
            PublishRefusal.certificateForbidsForwarding.description
                == "the certificate has no permit-port-forwarding extension, which publishing needs")
    }
}

/// pty-req is granted before the channel names its service: only to keys whose
/// options allow a terminal, and only when a `pty = true` service is one the
/// caller's exec request would open.
@Suite struct TerminalGrantTests {
    static let byName = Dictionary(uniqueKeysWithValues: AccessPolicyTests.services.map { ($0.name, $0) })

    static func grants(_ caller: Caller, _ terminals: [String]) -> Bool {
        AccessPolicy.grantsTerminal(
            caller: caller, terminalServices: terminals.map { ServiceName($0)! }, services: { byName[$0] },
            statusAllow: AccessPolicyTests.statusAllow)
    }

    @Test(arguments: [
        // options, terminal services, granted
        ("", ["web"], true),
        ("", [], false),
        ("no-pty", ["web"], false),
        ("restrict", ["web"], false),  // restrict also denies the open itself
        ("restrict,port-forwarding", ["web"], false),  // still no pty
        ("restrict,port-forwarding,pty", ["web"], true),
        ("no-pty,pty", ["web"], true),  // the later option wins, as in sshd
        ("", ["db"], true),  // alice@laptop is on db's allow list
        ("", ["admin"], false),  // admin admits user:root only
        ("", ["closed"], false),
        ("permitopen=\"db:*\"", ["web"], false),
        ("permitopen=\"db:*\"", ["web", "db"], true),
        ("no-port-forwarding", ["web"], false),
        ("command=\"web\"", ["web"], true),  // forced service is a terminal service
        ("command=\"web\"", ["db"], false),  // forced elsewhere: a pty would never be used
        ("restrict,pty,command=\"web\"", ["web"], true),  // a forced command passes restrict, as in sshd
    ])
    func grant(_ options: String, _ terminals: [String], _ granted: Bool) {
        #expect(Self.grants(AccessPolicyTests.caller(options), terminals) == granted)
    }

    @Test func certificatesNeedPermitPty() {
        var withoutPty = AccessPolicyCertificateTests.caller()
        #expect(!Self.grants(withoutPty, ["web"]))
        withoutPty.certificate!.restrictions.permitPTY = true
        #expect(Self.grants(withoutPty, ["web"]))
    }
}

import Foundation
import Testing

/// fived-connect with OpenSSH certificates and known_hosts markers, against the
/// built fived: user certificates made at test time by `ssh-keygen -s` (never
/// committed) presented from `-i FILE` with `FILE-cert.pub`, from CertificateFile
/// and from ssh-agent; `@revoked` and `@cert-authority` lines in known_hosts.
/// Each case checks the exit status, stderr and fived's log.
@Suite("fived-connect certificates and known_hosts markers", .serialized, .timeLimit(.minutes(3)))
struct FivedConnectCertificateTests {
    /// A CA, and an authorized_keys file that trusts it for user `tester` only
    /// (no principals= option: the user name must be a principal, as in sshd).
    static func trustingCA(_ environment: TestEnvironment) async throws -> CertificateTests.Authority {
        let ca = try await CertificateTests.makeCA(environment)
        try environment.setAuthorizedKeys(["cert-authority \(ca.publicLine)"])
        return ca
    }

    /// Runs `fived-connect -F none -p PORT -l tester -o UserKnownHostsFile=...
    /// -o GlobalKnownHostsFile=none ARGS 127.0.0.1 echo`, feeding `input`.
    static func connect(
        _ fived: Fived, _ arguments: [String], strict: String = "accept-new", input: String = "hello\n", agent: String? = nil
    ) async throws -> ProcessResult {
        let directory = fived.directory
        let stdin = try fived.input(Array(input.utf8))
        return try await runProcess(
            try Binaries.locate("fived-connect"),
            [
                "-F", "none", "-p", String(fived.port), "-l", fived.environment.user,
                "-o", "UserKnownHostsFile=\(fived.environment.knownHostsPath)", "-o", "GlobalKnownHostsFile=none",
                "-o", "StrictHostKeyChecking=\(strict)",
            ] + arguments + ["127.0.0.1", "echo"],
            environment: Tools.environment(home: directory.path, extra: agent.map { ["SSH_AUTH_SOCK": $0] } ?? [:]),
            stdin: stdin, scratch: directory.path)
    }

    static func stderr(_ result: ProcessResult) -> String { result.stderr }

    /// The server's host key line (`ssh-ed25519 BASE64`), from the key fived generated.
    static func hostKeyLine(_ fived: Fived) async throws -> String {
        let directory = fived.directory
        let derived = try await runProcess(
            try Tools.path("ssh-keygen"), ["-y", "-f", directory.file("host_ed25519_key")],
            environment: Tools.environment(home: directory.path), scratch: directory.path)
        guard derived.exitStatus == 0 else { throw HarnessError("ssh-keygen -y failed: \(derived)") }
        return derived.stdoutText.split(whereSeparator: { $0 == " " || $0 == "\n" }).prefix(2).joined(separator: " ")
    }

    @Test("-i FILE presents FILE-cert.pub after the plain key, as ssh does")
    func certificateBesideIdentityFile() async throws {
        let environment = try await TestEnvironment.make()
        let ca = try await Self.trustingCA(environment)
        let key = try await CertificateTests.certifiedKey(environment, ca: ca, name: "alice", id: "alice-laptop", serial: 42)
        try await environment.withFived(FivedOptions(services: CertificateTests.services())) { fived in
            let result = try await Self.connect(fived, ["-v", "-i", key.privatePath])
            #expect(result.exitStatus == 0, "\(result)")
            #expect(result.stdoutText == "hello\n")
            #expect(
                Self.stderr(result).contains(
                    "authenticated with certificate \(key.privatePath)-cert.pub (ID \"alice-laptop\", serial 42) with key \(key.privatePath)"), "\(result)")
            // The plain key was offered first and refused: it is in no authorized_keys line.
            let refused = await fived.waitForLog { $0.message == "authentication failed" && $0["fingerprint"] == key.fingerprint }
            #expect(refused != nil, "\(fived.logText)")
            let logged = await fived.waitForLog { $0.message == "authenticated" && $0["key_id"] == "alice-laptop" }
            #expect(logged?["serial"] == "42" && logged?["ca"] == ca.key.fingerprint && logged?["fingerprint"] == key.fingerprint, "\(fived.logText)")
        }
    }

    @Test("CertificateFile, from -o and from the config file, is offered first and signed by the identity file holding its key")
    func certificateFile() async throws {
        let environment = try await TestEnvironment.make()
        let ca = try await Self.trustingCA(environment)
        let key = try await CertificateTests.certifiedKey(environment, ca: ca, name: "bob", id: "bob-desk", serial: 7)
        let directory = environment.directory
        try FileManager.default.createDirectory(atPath: directory.file("certs"), withIntermediateDirectories: true)
        let certificate = directory.file("certs/bob.cert")
        try FileManager.default.moveItem(atPath: key.privatePath + "-cert.pub", toPath: certificate)
        try directory.write("ssh_config", "Host 127.0.0.1\n  CertificateFile \(certificate)\n  IdentityFile \(key.privatePath)\n")
        try await environment.withFived(FivedOptions(services: CertificateTests.services())) { fived in
            let viaOption = try await Self.connect(fived, ["-v", "-i", key.privatePath, "-o", "CertificateFile=\(certificate)"])
            #expect(viaOption.exitStatus == 0, "\(viaOption)")
            #expect(viaOption.stdoutText == "hello\n")
            #expect(
                Self.stderr(viaOption).contains("authenticated with certificate \(certificate) (ID \"bob-desk\", serial 7) with key \(key.privatePath)"),
                "\(viaOption)")
            // Offered first: the plain key was never tried, so nothing failed.
            #expect(!fived.logLines.contains { $0.message == "authentication failed" }, "\(fived.logText)")
            let first = await fived.waitForLog { $0.message == "authenticated" && $0["key_id"] == "bob-desk" }
            #expect(first?["serial"] == "7", "\(fived.logText)")

            // The same through ssh_config (-F FILE).
            let stdin = try fived.input(Array("again\n".utf8))
            let viaConfig = try await runProcess(
                try Binaries.locate("fived-connect"),
                [
                    "-F", directory.file("ssh_config"), "-p", String(fived.port), "-l", environment.user,
                    "-o", "UserKnownHostsFile=\(environment.knownHostsPath)", "-o", "GlobalKnownHostsFile=none", "127.0.0.1", "echo",
                ],
                environment: Tools.environment(home: directory.path), stdin: stdin, scratch: directory.path)
            #expect(viaConfig.exitStatus == 0, "\(viaConfig)")
            #expect(viaConfig.stdoutText == "again\n")
            #expect(fived.logLines.filter { $0.message == "authenticated" && $0["key_id"] == "bob-desk" }.count == 2, "\(fived.logText)")

            // A CertificateFile whose key no identity file holds is not offered, and the failure says so.
            let orphan = try await Self.connect(fived, ["-o", "CertificateFile=\(certificate)", "-i", environment.key.privatePath + "-missing"])
            #expect(orphan.exitStatus == 255, "\(orphan)")
            #expect(
                Self.stderr(orphan).contains(
                    "certificate \(certificate) (ID \"bob-desk\", serial 7) (not offered: no identity file holds its key \(key.fingerprint))"), "\(orphan)")
        }
    }

    @Test("a certificate held by ssh-agent is offered by the agent")
    func agentHeldCertificate() async throws {
        let environment = try await TestEnvironment.make()
        let ca = try await Self.trustingCA(environment)
        let key = try await CertificateTests.certifiedKey(environment, ca: ca, name: "carol", id: "carol-agent", serial: 9)
        let agent = try await SSHAgent.start(in: environment.directory)
        do {
            try await agentHeldCertificate(environment, ca: ca, key: key, agent: agent)
        } catch {
            await agent.stop()
            throw error
        }
        await agent.stop()
    }

    func agentHeldCertificate(
        _ environment: TestEnvironment, ca: CertificateTests.Authority, key: ClientKey, agent: SSHAgent
    ) async throws {
        try await agent.add(key)  // ssh-add loads carol-cert.pub beside carol
        let held = try await agent.fingerprints()
        #expect(held == [key.fingerprint, key.fingerprint])
        // Only the agent has the key now.
        try FileManager.default.removeItem(atPath: key.privatePath)
        try FileManager.default.removeItem(atPath: key.privatePath + "-cert.pub")
        try await environment.withFived(FivedOptions(services: CertificateTests.services())) { fived in
            let result = try await Self.connect(fived, ["-v"], agent: agent.socketPath)
            #expect(result.exitStatus == 0, "\(result)")
            #expect(result.stdoutText == "hello\n")
            #expect(Self.stderr(result).contains("authenticated with a key from ssh-agent"), "\(result)")
            let logged = await fived.waitForLog { $0.message == "authenticated" && $0["key_id"] == "carol-agent" }
            #expect(logged?["serial"] == "9" && logged?["ca"] == ca.key.fingerprint, "\(fived.logText)")
        }
    }

    @Test("an expired certificate is offered, refused by fived, and ends with status 255")
    func expiredCertificate() async throws {
        let environment = try await TestEnvironment.make()
        let ca = try await Self.trustingCA(environment)
        let key = try await CertificateTests.certifiedKey(
            environment, ca: ca, name: "dave", id: "dave-old", validity: "20200101000000Z:20200102000000Z")
        try await environment.withFived(FivedOptions(services: CertificateTests.services())) { fived in
            let result = try await Self.connect(fived, ["-i", key.privatePath])
            #expect(result.exitStatus == 255, "\(result)")
            #expect(result.stdoutText.isEmpty)
            let stderr = Self.stderr(result)
            #expect(stderr.contains("permission denied"), "\(result)")
            #expect(
                stderr.contains("certificate \(key.privatePath)-cert.pub (ID \"dave-old\", serial 42) with key \(key.privatePath), expired at 2020-01-02T"),
                "\(result)")
            let reason = await CertificateTests.failure(fived, "expired")
            #expect(reason?.contains("certificate 'dave-old' refused: certificate expired at 2020-01-02T") == true, "\(fived.logText)")
            #expect(!fived.logLines.contains { $0.message == "authenticated" }, "\(fived.logText)")
        }
    }

    @Test("a host key marked @revoked is refused whatever StrictHostKeyChecking says, and known_hosts is left alone")
    func revokedHostKey() async throws {
        let environment = try await TestEnvironment.make()
        var options = FivedOptions()
        options.logLevel = "debug"
        try await environment.withFived(options) { fived in
            let hostKey = try await Self.hostKeyLine(fived)
            let knownHosts = "[127.0.0.1]:\(fived.port) \(hostKey)\n@revoked * \(hostKey) stolen\n"
            try environment.directory.write("known_hosts", knownHosts)
            for strict in ["yes", "accept-new", "no"] {
                let result = try await Self.connect(fived, ["-i", environment.key.privatePath], strict: strict)
                #expect(result.exitStatus == 255, "\(result)")
                let stderr = Self.stderr(result)
                #expect(stderr.contains("is revoked: \(environment.knownHostsPath):2 marks it @revoked"), "\(result)")
                #expect(stderr.split(separator: "\n").count == 1, "\(result)")
                #expect(!stderr.contains("permanently added"))
            }
            #expect(try String(contentsOfFile: environment.knownHostsPath, encoding: .utf8) == knownHosts)
            // fived saw three connections leave before authenticating.
            let closed = await fived.waitForLog(timeout: .seconds(5)) { _ in
                fived.logLines.filter { $0.message == "connection closed" && $0["user"] == "-" }.count >= 3
            }
            #expect(closed != nil, "\(fived.logText)")
            #expect(!fived.logLines.contains { $0.message == "authenticated" || $0.message == "authentication failed" }, "\(fived.logText)")
        }
    }

    @Test("a host known only by @cert-authority is refused with the limitation named; accept-new records the plain key")
    func certificateAuthorityOnlyHost() async throws {
        let environment = try await TestEnvironment.make()
        let hostCA = try await environment.newKey(.ed25519, name: "host_ca", comment: "host-ca")
        var options = FivedOptions()
        options.logLevel = "debug"
        try await environment.withFived(options) { fived in
            let knownHosts = "@cert-authority [127.0.0.1]:* \(hostCA.publicLine)\n"
            try environment.directory.write("known_hosts", knownHosts)
            let refused = try await Self.connect(fived, ["-i", environment.key.privatePath], strict: "yes")
            #expect(refused.exitStatus == 255, "\(refused)")
            let stderr = Self.stderr(refused)
            #expect(stderr.split(separator: "\n").count == 1, "\(refused)")
            #expect(
                stderr.contains("\(environment.knownHostsPath):1 names a certificate authority (@cert-authority) for [127.0.0.1]:\(fived.port)"), "\(refused)")
            #expect(stderr.contains("cannot verify host certificates (libssh 0.10.6"), "\(refused)")
            #expect(try String(contentsOfFile: environment.knownHostsPath, encoding: .utf8) == knownHosts)
            let closed = await fived.waitForLog { $0.message == "connection closed" && $0["user"] == "-" }
            #expect(closed != nil, "\(fived.logText)")
            #expect(!fived.logLines.contains { $0.message == "authenticated" }, "\(fived.logText)")

            let accepted = try await Self.connect(fived, ["-i", environment.key.privatePath], strict: "accept-new")
            #expect(accepted.exitStatus == 0, "\(accepted)")
            #expect(accepted.stdoutText == "hello\n")
            #expect(Self.stderr(accepted).contains("permanently added '[127.0.0.1]:\(fived.port)'"), "\(accepted)")
            #expect(Self.stderr(accepted).contains("\(environment.knownHostsPath):1 names a certificate authority"), "\(accepted)")
            let recorded = try String(contentsOfFile: environment.knownHostsPath, encoding: .utf8)
            let hostKey = try await Self.hostKeyLine(fived)
            #expect(recorded.hasPrefix(knownHosts) && recorded.contains("[127.0.0.1]:\(fived.port) \(hostKey)"), "\(recorded)")
            let logged = await fived.waitForLog { $0.message == "authenticated" && $0["fingerprint"] == environment.key.fingerprint }
            #expect(logged != nil, "\(fived.logText)")
        }
    }

    @Test("where libssh misreads known_hosts, fived-connect's reading decides: a broken line does not hide a changed key")
    func libsshMisreadIsOverruled() async throws {
        let environment = try await TestEnvironment.make()
        let other = try await environment.newKey(.ed25519, name: "impostor")
        try await environment.withFived { fived in
            // libssh 0.10.6 gives up on the whole file at a matching line it cannot
            // parse (knownhosts.c:283-285, 1094-1096) and would call the host unknown,
            // so accept-new would record the server's key beside the recorded one.
            let name = "[127.0.0.1]:\(fived.port)"
            let otherKey = other.publicLine.split(separator: " ").prefix(2).joined(separator: " ")
            let knownHosts = "\(name) ssh-ed25519 AAAAbroken\n\(name) \(otherKey)\n"
            try environment.directory.write("known_hosts", knownHosts)
            let result = try await Self.connect(fived, ["-v", "-i", environment.key.privatePath], strict: "accept-new")
            #expect(result.exitStatus == 255, "\(result)")
            let stderr = Self.stderr(result)
            #expect(stderr.contains("libssh reads known_hosts as 'unknown' here"), "\(result)")
            #expect(stderr.contains("HAS CHANGED"), "\(result)")
            #expect(stderr.contains("\(environment.knownHostsPath):2 has ssh-ed25519 \(other.fingerprint)"), "\(result)")
            #expect(try String(contentsOfFile: environment.knownHostsPath, encoding: .utf8) == knownHosts)
            #expect(!fived.logLines.contains { $0.message == "authenticated" }, "\(fived.logText)")
        }
    }
}

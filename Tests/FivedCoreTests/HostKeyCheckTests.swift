import Testing

@testable import FivedCore

/// The known_hosts decision: OpenSSH's for plain lines, `@revoked` refused
/// whatever StrictHostKeyChecking says, `@cert-authority` never taken for the
/// host's key and named when it cannot be used.
@Suite struct HostKeyCheckTests {
    static let server = TestKeys.ed25519
    static let other = TestKeys.alice
    static let name = "[fived.example]:1"

    func decide(_ user: String, global: String = "", strict: StrictHostKeyChecking = .yes) -> HostKeyCheck.Outcome {
        HostKeyCheck(
            name: Self.name, hostName: "fived.example", port: 1,
            offered: HostKeyCheck.OfferedKey(type: Self.server.type, fingerprint: Self.server.fingerprint, blob: Self.server.blob.bytes),
            files: [HostKeyCheck.File(path: "/h/.ssh/known_hosts", text: user), HostKeyCheck.File(path: "/etc/ssh/ssh_known_hosts", text: global)],
            strict: strict
        ).decide()
    }

    func refusal(_ outcome: HostKeyCheck.Outcome) -> HostKeyCheck.Refusal? {
        if case .refuse(let refusal) = outcome { return refusal }
        return nil
    }

    @Test func knownInEitherFile() {
        #expect(decide("\(Self.name) \(Self.server.line)\n") == .known("/h/.ssh/known_hosts:1"))
        #expect(decide("", global: "# system\n\(Self.name) \(Self.server.line)\n") == .known("/etc/ssh/ssh_known_hosts:2"))
    }

    @Test func unknownFollowsStrictHostKeyChecking() {
        let refused = refusal(decide("other.example \(Self.server.line)\n"))
        #expect(refused?.kind == .unknown)
        #expect(refused?.message.contains("is not known (ssh-ed25519 \(Self.server.fingerprint))") == true)
        #expect(refused?.message.contains("StrictHostKeyChecking=accept-new to record it in /h/.ssh/known_hosts") == true)
        for mode in [StrictHostKeyChecking.acceptNew, .no] {
            #expect(
                decide("", strict: mode) == .record(note: "permanently added '\(Self.name)' (ssh-ed25519 \(Self.server.fingerprint)) to /h/.ssh/known_hosts"))
        }
    }

    @Test func changedIsRefusedWhateverStrictHostKeyCheckingSays() {
        for mode in [StrictHostKeyChecking.yes, .acceptNew, .no] {
            let refused = refusal(decide("", global: "\n\(Self.name) \(Self.other.line)\n", strict: mode))
            #expect(refused?.kind == .changed)
            #expect(refused?.message.contains("HAS CHANGED") == true)
            #expect(refused?.message.contains("/etc/ssh/ssh_known_hosts:2 has ssh-ed25519 \(Self.other.fingerprint)") == true)
            #expect(refused?.message.contains("ssh-keygen -R '\(Self.name)' -f /etc/ssh/ssh_known_hosts") == true)
        }
    }

    @Test func revokedWinsOverAPlainLineAndEveryMode() {
        let text = """
            \(Self.name) \(Self.server.line)
            @revoked * \(Self.server.line)
            """
        for mode in [StrictHostKeyChecking.yes, .acceptNew, .no] {
            let refused = refusal(decide(text, strict: mode))
            #expect(refused?.kind == .revoked)
            #expect(refused?.message.contains("/h/.ssh/known_hosts:2 marks it @revoked") == true)
            #expect(refused?.message.contains(Self.server.fingerprint) == true)
        }
        // In the global file too; a revoked line for another key changes nothing.
        #expect(refusal(decide("", global: "@revoked \(Self.name) \(Self.server.line)\n", strict: .no))?.kind == .revoked)
        #expect(decide("\(Self.name) \(Self.server.line)\n@revoked * \(Self.other.line)\n") == .known("/h/.ssh/known_hosts:1"))
    }

    @Test func certificateAuthorityOnlyIsRefusedUnderYesAndNamed() {
        let text = "@cert-authority [*.example]:* \(Self.other.line)\n"
        let refused = refusal(decide(text))
        #expect(refused?.kind == .certificateAuthorityOnly)
        #expect(refused?.message.contains("/h/.ssh/known_hosts:1 names a certificate authority (@cert-authority)") == true)
        #expect(refused?.message.contains("cannot verify host certificates") == true)
        #expect(refused?.message.contains("StrictHostKeyChecking=accept-new to record the plain key") == true)
        #expect(refused?.message.contains("\n") == false)
        guard case .record(let note) = decide(text, strict: .acceptNew) else {
            Issue.record("accept-new should record the plain key")
            return
        }
        #expect(note.hasPrefix("permanently added '\(Self.name)'"))
        #expect(note.contains("/h/.ssh/known_hosts:1 names a certificate authority"))
    }

    @Test func aCertificateAuthorityLineIsNeverTheHostsOwnKey() {
        // The CA line holds the very key the server offers: still not known.
        let refused = refusal(decide("@cert-authority \(Self.name) \(Self.server.line)\n"))
        #expect(refused?.kind == .certificateAuthorityOnly)
        // With a plain line for another key it is a changed key, as in ssh.
        #expect(refusal(decide("@cert-authority * \(Self.server.line)\n\(Self.name) \(Self.other.line)\n"))?.kind == .changed)
        // With the plain key recorded as well, the plain line decides.
        #expect(decide("@cert-authority * \(Self.other.line)\n\(Self.name) \(Self.server.line)\n") == .known("/h/.ssh/known_hosts:2"))
    }

    @Test func negatedHostsAreNotKnown() {
        // libssh 0.10.6 would call this known (knownhosts.c tests each pattern alone).
        #expect(refusal(decide("*,![fived.example]:1 \(Self.server.line)\n"))?.kind == .unknown)
    }
}

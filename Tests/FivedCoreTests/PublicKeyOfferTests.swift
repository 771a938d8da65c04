import Testing

@testable import FivedCore

/// The order fived-connect offers keys and certificates in (OpenSSH 9.2
/// `pubkey_prepare`), and the client's reading of certificate files.
@Suite struct PublicKeyOfferTests {
    @Test func certificatesBesideIdentityFilesWhenNoneIsListed() {
        let order = PublicKeyOffer.order(identityFiles: ["/k/a", "/k/b"], certificateFiles: [], useAgent: true)
        #expect(
            order == [
                .agent,
                .identityFile("/k/a"), .identityCertificate(key: "/k/a", certificate: "/k/a-cert"),
                .identityFile("/k/b"), .identityCertificate(key: "/k/b", certificate: "/k/b-cert"),
            ])
    }

    @Test func certificateFilesFirstAndThenNoneBeside() {
        let order = PublicKeyOffer.order(identityFiles: ["/k/a"], certificateFiles: ["/c/one.pub", "/c/two"], useAgent: false)
        #expect(order == [.certificateFile("/c/one.pub"), .certificateFile("/c/two"), .identityFile("/k/a")])
    }

    @Test func candidatesAsSshkeyLoadPublic() {
        #expect(ClientCertificate.candidates(for: "/k/a-cert") == ["/k/a-cert", "/k/a-cert.pub"])
        #expect(ClientCertificate.candidates(for: "/k/a-cert.pub") == ["/k/a-cert.pub"])
    }

    @Test func readsAUserCertificateAndItsValidity() throws {
        let k = try Keygen()
        try k.key("ca")
        let user = try k.key("user")
        _ = try k.certify("user", ca: "ca", id: "alice-laptop", validity: "20200101000000Z:20300101000000Z", serial: 7)
        let text = "# made by ssh-keygen\n\n" + (try k.text("user-cert.pub"))
        let certificate = try ClientCertificate(text: text, path: "/k/user-cert.pub")
        #expect(certificate.certifies(publicBlob: user.bytes))
        #expect(!certificate.certifies(publicBlob: TestKeys.alice.blob.bytes))
        #expect(certificate.shown == "certificate /k/user-cert.pub (ID \"alice-laptop\", serial 7)")
        #expect(certificate.validityProblem(now: 1_700_000_000) == nil)
        #expect(certificate.validityProblem(now: 1_500_000_000) == "not valid before 2020-01-01T00:00:00Z")
        #expect(certificate.validityProblem(now: 1_893_456_000) == "expired at 2030-01-01T00:00:00Z")
    }

    @Test func refusesPlainKeysHostCertificatesAndEmptyFiles() throws {
        let k = try Keygen()
        try k.key("ca")
        try k.key("host")
        _ = try k.certify("host", ca: "ca", host: true)
        let host = try k.text("host-cert.pub")
        let hostError = #expect(throws: FivedCoreError.self) { try ClientCertificate(text: host, path: "/k/host-cert.pub") }
        #expect(hostError?.message == "/k/host-cert.pub:1: a host certificate, not a user certificate")
        let plainError = #expect(throws: FivedCoreError.self) { try ClientCertificate(text: "\n" + TestKeys.alice.line + "\n", path: "/k/x") }
        #expect(plainError?.message == "/k/x:2: ssh-ed25519 is a plain key, not a certificate")
        let emptyError = #expect(throws: FivedCoreError.self) { try ClientCertificate(text: "# nothing\n", path: "/k/y") }
        #expect(emptyError?.message == "/k/y: no certificate in the file")
    }
}

import Testing
@testable import FivedCore

@Suite struct TrustedCAKeysParserTests {
    @Test func keysAndProblems() {
        let text = """
            # the user CA
            \(TestKeys.ca.line)
            \(TestKeys.ecdsa256.line)

            cert-authority \(TestKeys.alice.line)
            \(TestKeys.bobCertificate.line)
            ssh-dss AAAAB3NzaC1kc3MAAAAHc3NoLWRzcw== dsa
            """
        let (keys, problems) = TrustedCAKeysParser.parseFile(Array(text.utf8), path: "/etc/fived/ca.pub")
        #expect(keys.map(\.blob) == [TestKeys.ca.blob, TestKeys.ecdsa256.blob])
        #expect(keys.map(\.location) == ["/etc/fived/ca.pub:2", "/etc/fived/ca.pub:3"])
        #expect(keys[1].comment == "ecdsab256@fived-test")
        #expect(keys.allSatisfy { $0.options == KeyOptions() })
        #expect(
            problems.map(\.message) == [
                "/etc/fived/ca.pub:5: the key after 'cert-authority' is not valid base64 (options are not allowed here)",
                "/etc/fived/ca.pub:6: a certificate cannot be a CA key (list the CA's plain public key)",
                "/etc/fived/ca.pub:7: CA key type ssh-dss is not supported",
            ])
        #expect(problems.allSatisfy { $0.code == .trustedCAKeyMalformed })
    }
}

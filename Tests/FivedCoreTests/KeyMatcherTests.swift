import Foundation
import Testing
@testable import FivedCore

@Suite struct KeyMatcherTests {
    static let utc = TimeZone(identifier: "UTC")!
    /// 2030-01-01T00:00:00Z
    static let expiry: Int64 = 1_893_456_000

    func keys(_ text: String, path: String = "/etc/fived/authorized_keys") -> [AuthorizedKey] {
        let (keys, problems) = AuthorizedKeysParser.parseFile(text, path: path, timeZone: Self.utc)
        #expect(problems.isEmpty, "\(problems)")
        return keys
    }

    @Test func notListed() {
        let candidates = keys(TestKeys.alice.line)
        #expect(KeyMatcher.match(presented: TestKeys.bob.blob, candidates: candidates, clientAddress: "10.0.0.1", now: 0) == .notListed)
        #expect(KeyMatcher.match(presented: TestKeys.bob.blob, candidates: [], clientAddress: "10.0.0.1", now: 0) == .notListed)
        // same point, different key type: not the same key
        let ed = keys(TestKeys.ed25519.line)
        #expect(KeyMatcher.match(presented: TestKeys.skEd25519.blob, candidates: ed, clientAddress: "::1", now: 0) == .notListed)
    }

    @Test func firstAdmittingLineWins() {
        let candidates = keys(
            """
            \(TestKeys.bob.line)
            command="first" \(TestKeys.alice.line)
            command="second" \(TestKeys.alice.line)
            """)
        guard case .accepted(let key) = KeyMatcher.match(presented: TestKeys.alice.blob, candidates: candidates, clientAddress: "10.0.0.1", now: 0)
        else {
            Issue.record("not accepted")
            return
        }
        #expect(key.options.command == "first")
        #expect(key.line == 2)
    }

    @Test func failingLinesDoNotStopTheSearch() {
        let candidates =
            keys(
                """
                from="192.168.0.0/16",command="lan" \(TestKeys.alice.line)
                expiry-time="20300101Z",command="old" \(TestKeys.alice.line)
                """, path: "/a")
            + keys(#"from="10.0.0.0/8",command="office" \#(TestKeys.alice.line)"#, path: "/b")
        func outcome(_ address: String, _ now: Int64) -> KeyMatcher.Outcome {
            KeyMatcher.match(presented: TestKeys.alice.blob, candidates: candidates, clientAddress: address, now: now)
        }
        func command(_ o: KeyMatcher.Outcome) -> String? {
            if case .accepted(let k) = o { return k.options.command }
            return nil
        }
        #expect(command(outcome("192.168.1.1", Self.expiry + 100)) == "lan")
        #expect(command(outcome("10.1.1.1", Self.expiry)) == "old")  // valid up to and including the second
        #expect(command(outcome("10.1.1.1", Self.expiry + 1)) == "office")
        #expect(command(outcome("::ffff:10.1.1.1", Self.expiry + 1)) == "office")
        #expect(
            outcome("172.16.0.1", Self.expiry + 1)
                == .refused([
                    .init(location: "/a:1", reason: .fromMismatch(pattern: "192.168.0.0/16")),
                    .init(location: "/a:2", reason: .expired(at: Self.expiry)),
                    .init(location: "/b:1", reason: .fromMismatch(pattern: "10.0.0.0/8")),
                ]))
        #expect(command(outcome("172.16.0.1", Self.expiry - 1)) == "old")
    }

    @Test func refusalDescriptionsNameTheLine() {
        let candidates = keys(#"from="10.0.0.0/8" \#(TestKeys.alice.line)"#)
        let outcome = KeyMatcher.match(presented: TestKeys.alice.blob, candidates: candidates, clientAddress: "8.8.8.8", now: 0)
        #expect(outcome.description == #"key refused: /etc/fived/authorized_keys:1: client address not in from="10.0.0.0/8""#)
        #expect(KeyMatcher.Outcome.notListed.description.contains("not listed"))
    }

    @Test func unparseableClientAddressOnlyMatchesWildcards() {
        let star = keys(#"from="*" \#(TestKeys.alice.line)"#)
        let cidr = keys(#"from="10.0.0.0/8" \#(TestKeys.alice.line)"#)
        #expect(KeyMatcher.match(presented: TestKeys.alice.blob, candidates: star, clientAddress: "", now: 0) != .notListed)
        #expect(KeyMatcher.match(presented: TestKeys.alice.blob, candidates: cidr, clientAddress: "garbage", now: 0) != .accepted(cidr[0]))
    }
}

/// cert-authority lines, now honoured by the parser, never admit their own key.
@Suite struct KeyMatcherCertAuthorityTests {
    @Test func certAuthorityLinesDoNotAdmitTheCAKeyItself() {
        let (keys, problems) = AuthorizedKeysParser.parseFile(
            """
            cert-authority \(TestKeys.ca.line)
            cert-authority,principals="alice" \(TestKeys.alice.line)
            command="plain" \(TestKeys.alice.line)
            """, path: "/ak", timeZone: KeyMatcherTests.utc)
        #expect(problems.isEmpty)
        #expect(KeyMatcher.match(presented: TestKeys.ca.blob, candidates: keys, clientAddress: "10.0.0.1", now: 0) == .notListed)
        guard case .accepted(let key) = KeyMatcher.match(presented: TestKeys.alice.blob, candidates: keys, clientAddress: "10.0.0.1", now: 0) else {
            Issue.record("not accepted")
            return
        }
        #expect(key.line == 3 && key.options.command == "plain")
    }
}

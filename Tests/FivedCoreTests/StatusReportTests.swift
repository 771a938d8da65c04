import FivedCore
import Testing

@Suite("Status report")
struct StatusReportTests {
    static let report = StatusReport(
        time: 1_795_712_400,  // 2026-11-26T17:00:00Z
        workers: 2,
        connections: [
            .init(
                label: "0.1", user: "alice", fingerprint: "SHA256:abc", client: "127.0.0.1:40000", ageMilliseconds: 65_000,
                channels: [
                    .init(id: 7, service: "echo", form: "direct-tcpip", bytesIn: 1234, bytesOut: 1234, ageMilliseconds: 3_000),
                    .init(id: 9, service: "status", form: "exec", bytesIn: 0, bytesOut: 0, ageMilliseconds: 5),
                ]),
            .init(label: "1.1", user: nil, fingerprint: nil, client: "[::1]:50000", ageMilliseconds: 400, channels: []),
        ],
        publications: [.init(name: "myapp", connection: "0.1", user: "alice", client: "127.0.0.1:40000")])

    @Test("the summary counts workers, connections, channels and names")
    func summary() {
        let first = Self.report.rendered().split(separator: "\n").first.map(String.init)
        #expect(
            first == "fived status at 2026-11-26T17:00:00Z: 2 workers, 2 connections (1 unauthenticated), 2 channels, 1 published name, 0 tcpmux connections")
    }

    @Test("tables are aligned: each header word starts where its column's cells do")
    func aligned() {
        let lines = Self.report.rendered().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try! #require(lines.first { $0.hasPrefix("CHANNEL ") })
        let row = try! #require(lines.first { $0.hasPrefix("7 ") })
        #expect(row == "7        0.1         alice  echo     direct-tcpip  1234      1234       3s")
        #expect(header == "CHANNEL  CONNECTION  USER   SERVICE  FORM          BYTES_IN  BYTES_OUT  AGE")
        let connection = try! #require(lines.first { $0.hasPrefix("0.1 ") })
        #expect(connection == "0.1         alice  SHA256:abc        127.0.0.1:40000  2026-11-26T16:58:55Z  1m05s  2")
        let pending = try! #require(lines.first { $0.hasPrefix("1.1 ") })
        #expect(pending.contains("-      (authenticating)  [::1]:50000"))
        #expect(lines.contains("myapp      0.1         alice  127.0.0.1:40000"))
    }

    @Test("empty tables say so")
    func empty() {
        let text = StatusReport(time: 0, workers: 1, connections: [], publications: [], silentWorkers: [1]).rendered()
        #expect(text.hasPrefix("fived status at 1970-01-01T00:00:00Z: 1 worker, 0 connections"))
        #expect(text.contains("(no connections)\n") && text.contains("(no channels)\n") && text.contains("(no published names)\n"))
        #expect(text.contains("note: worker 1 did not answer"))
    }

    @Test("a user name cannot break a line or fake a column")
    func hostileUser() {
        var report = Self.report
        report.connections[0].user = "eve\nroot  SHA256:x"
        let text = report.rendered()
        #expect(text.contains("eve\\x0aroot\\x20\\x20SHA256:x"))
        #expect(!text.contains("\nroot"))
    }

    @Test(
        "timestamps and ages",
        arguments: [
            (Int64(0), "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"), (4_102_444_799, "2099-12-31T23:59:59Z"),
        ])
    func timestamp(seconds: Int64, text: String) {
        #expect(StatusReport.renderedTimestamp(seconds) == text)
    }

    @Test("ages read as a person would say them")
    func durations() {
        #expect(
            [999, 1000, 59_999, 60_000, 3_599_000, 3_600_000, 90_061_000].map(StatusReport.renderedDuration)
                == ["999ms", "1s", "59s", "1m00s", "59m59s", "1h00m", "1d01h"])
    }
}

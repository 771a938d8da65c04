import Testing
@testable import FivedCore

@Suite("Exit reports")
struct ExitReportTests {
    @Test func waitStatusesDecodeAsLinuxWritesThem() {
        #expect(ExitReport(waitStatus: 0) == .status(0))
        #expect(ExitReport(waitStatus: 3 << 8) == .status(3))
        #expect(ExitReport(waitStatus: 9) == .signal("KILL"))
        #expect(ExitReport(waitStatus: 13 | 0x80) == .signal("PIPE"))  // core dumped flag
        #expect(ExitReport(waitStatus: 31) == .signal("SIG31"))
    }

    @Test func signalNamesRoundTrip() {
        for number: Int32 in [1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 13, 14, 15] {
            #expect(ExitReport.signalNumber(ExitReport.signalName(number)) == number)
        }
        #expect(ExitReport.signalNumber("NOPE") == nil)
    }
}

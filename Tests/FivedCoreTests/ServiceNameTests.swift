import Testing

@testable import FivedCore

@Suite struct ServiceNameTests {
    @Test(arguments: ["web", "a", "git-daemon", "my_service.v2", "ECHO", "0", String(repeating: "x", count: 64)])
    func acceptsValidNames(_ raw: String) throws {
        let name = try #require(ServiceName(raw))
        #expect(name.value == raw.lowercased())
        #expect(ServiceName.isValid(raw))
    }

    @Test(arguments: ["", String(repeating: "x", count: 65), "we b", "web:80", "a/b", "é", "web\n", "tab\there", "a@b"])
    func rejectsInvalidNames(_ raw: String) {
        #expect(ServiceName(raw) == nil)
        #expect(!ServiceName.isValid(raw))
    }

    @Test func lengthLimitIsInBytes() {
        #expect(ServiceName.maximumLength == 64)
        #expect(ServiceName(String(repeating: "a", count: 64)) != nil)
        #expect(ServiceName(String(repeating: "a", count: 65)) == nil)
    }

    @Test func comparesWithoutCase() throws {
        let upper = try #require(ServiceName("Web.Site"))
        let lower = try #require(ServiceName("web.site"))
        #expect(upper == lower)
        #expect(upper.hashValue == lower.hashValue)
        #expect(Set([upper, lower]).count == 1)
        #expect(upper.description == "web.site")
        #expect(ServiceName("HELP") == .help)
        #expect(ServiceName("Status")?.isReserved == true)
        #expect(ServiceName("web")?.isReserved == false)
    }

    @Test func sortsByCanonicalName() throws {
        let names = ["b", "A", "c"].compactMap { ServiceName($0) }.sorted()
        #expect(names.map(\.value) == ["a", "b", "c"])
    }

    @Test func validatingNamesTheContext() {
        #expect {
            try ServiceName(validating: "bad name", context: "--service")
        } throws: { error in
            let error = error as! FivedCoreError
            return error.code == .invalidServiceName
                && error.message.hasPrefix("--service: invalid service name 'bad name'")
                && error.message.contains("1 to 64")
        }
    }

    @Test func printableEscapesControlCharacters() {
        #expect(ServiceName.printable("a\nb") == "a\\x0ab")
        #expect(ServiceName.printable("\u{1b}[31m") == "\\x1b[31m")
        #expect(ServiceName.printable("del\u{7f}") == "del\\x7f")
        #expect(ServiceName.printable("plain-é") == "plain-é")
    }

    @Test func printableCutsLongText() {
        let long = String(repeating: "y", count: 100)
        #expect(ServiceName.printable(long) == String(repeating: "y", count: 80) + "...")
        #expect(ServiceName.printable(String(repeating: "y", count: 80)) == String(repeating: "y", count: 80))
    }

    @Test func validatingMessageIsOneLineEvenForHostileInput() {
        #expect {
            try ServiceName(validating: "x\ny", context: "fived.toml:3")
        } throws: { error in
            let message = (error as! FivedCoreError).message
            return !message.contains("\n") && message.contains("x\\x0ay")
        }
    }
}

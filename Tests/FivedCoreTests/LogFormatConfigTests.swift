import Testing

@testable import FivedCore

/// `log_format`: text by default, json on request, anything else an error naming the line.
@Suite("log_format")
struct LogFormatConfigTests {
    @Test("default text; json and JSON accepted; shown by --check")
    func values() throws {
        #expect(try ConfigurationLoader.parse(toml: "", file: "f.toml").logFormat == .text)
        #expect(try ConfigurationLoader.parse(toml: "log_format = \"json\"\n", file: "f.toml").logFormat == .json)
        #expect(try ConfigurationLoader.parse(toml: "log_format = \"JSON\"\n", file: "f.toml").logFormat == .json)
        let config = try ConfigurationLoader.parse(toml: "log_format = \"json\"\n", file: "f.toml").withDefaults()
        #expect(ServiceTable.render(config).contains("\nlog format: json\n"))
    }

    @Test("a bad value names the file, line and key, and the accepted names")
    func bad() {
        do {
            _ = try ConfigurationLoader.parse(toml: "log_level = \"info\"\nlog_format = \"yaml\"\n", file: "f.toml")
            Issue.record("accepted yaml")
        } catch {
            #expect(
                error.message.contains("f.toml:2") && error.message.contains("log_format") && error.message.contains("yaml")
                    && error.message.contains("text, json"), "\(error.message)")
        }
        do {
            _ = try ConfigurationLoader.parse(toml: "log_format = 1\n", file: "f.toml")
            Issue.record("accepted 1")
        } catch {
            #expect(error.message.contains("log_format"), "\(error.message)")
        }
    }
}

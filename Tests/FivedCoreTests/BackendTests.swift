import Testing

@testable import FivedCore

@Suite struct BackendTests {
    @Test(arguments: [
        ("tcp:127.0.0.1:8080", Backend.tcp(host: "127.0.0.1", port: 8080)),
        ("tcp:[::1]:80", .tcp(host: "::1", port: 80)),
        ("tcp:db.internal:5432", .tcp(host: "db.internal", port: 5432)),
        ("unix:/run/web.sock", .unix(path: "/run/web.sock")),
        ("exec:/bin/cat", .exec(argv: ["/bin/cat"])),
        (
            "exec:/usr/bin/git daemon --inetd --export-all /srv/git",
            .exec(argv: ["/usr/bin/git", "daemon", "--inetd", "--export-all", "/srv/git"])
        ),
    ])
    func parsesFlagForms(_ raw: String, _ expected: Backend) throws {
        let backend = try Backend(flagValue: raw, context: "--service web")
        #expect(backend == expected)
        #expect(backend.description == raw)
    }

    @Test func execSplitsOnRunsOfSpaces() throws {
        let backend = try Backend(flagValue: "exec:  /usr/bin/rsync   --daemon  ", context: "--service rsync")
        #expect(backend == .exec(argv: ["/usr/bin/rsync", "--daemon"]))
        #expect(backend.description == "exec:/usr/bin/rsync --daemon")
    }

    @Test func execDescriptionQuotesArgumentsWithSpaces() {
        let backend = Backend.exec(argv: ["/bin/echo", "hello world", ""])
        #expect(backend.description == "exec:/bin/echo 'hello world' ''")
    }

    @Test(arguments: [
        ("tcp:127.0.0.1", "no port"),
        ("tcp:127.0.0.1:0", "from 1 to 65535"),
        ("tcp:127.0.0.1:70000", "from 1 to 65535"),
        ("tcp:::1:80", "brackets"),
        ("tcp::80", "no host"),
        ("tcp:", "no port"),
        ("unix:run/web.sock", "must be absolute"),
        ("unix:", "must be absolute"),
        ("unix:/" + String(repeating: "s", count: 107), "longer than 107 bytes"),
        ("exec:cat", "must be an absolute path"),
        ("exec:", "needs a program"),
        ("exec:   ", "needs a program"),
        ("http://localhost:80", "is not tcp:HOST:PORT, unix:/PATH or exec:/PATH/PROG ARG..."),
        ("127.0.0.1:8080", "is not tcp:HOST:PORT"),
        ("", "is not tcp:HOST:PORT"),
    ])
    func rejects(_ raw: String, _ reason: String) throws {
        let error = try #require(thrown { _ = try Backend(flagValue: raw, context: "--service web") })
        #expect(error.code == .invalidBackend)
        #expect(error.message.hasPrefix("--service web: ") && error.message.contains(reason) && !error.message.contains("\n"), "\(error)")
    }

    @Test func unixPathAtTheKernelLimitIsAccepted() throws {
        let path = "/" + String(repeating: "s", count: 106)
        #expect(try Backend(flagValue: "unix:" + path, context: "--service x") == .unix(path: path))
    }

    @Test func messageShowsWhatWasWritten() {
        #expect {
            try Backend(flagValue: "exec:cat -u", context: "--service echo")
        } throws: { error in
            (error as! FivedCoreError).message
                == "--service echo: program 'cat' must be an absolute path, e.g. /usr/bin/cat"
        }
    }
}

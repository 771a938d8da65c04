#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Everything that drives fived with SSH clients other than (and beside) stock
/// OpenSSH: `FIVED_TEST_ARGS="--filter IntegrationTests.Clients" bash scripts/test.sh`
/// runs it all. Everything it starts runs at low CPU priority (`LowPriority`).
/// docs/clients.md has the matrix, the versions and what each test checks.
@Suite("Clients")
struct Clients {}

extension Clients {
    /// Each client of the matrix (OpenSSH, PuTTY, Dropbear, paramiko, asyncssh, Go's
    /// x/crypto/ssh) opens each channel form to exec services: 16 MiB each way
    /// checked by SHA-256, exit statuses and signals, and half-close both ways.
    /// Every test case has a fived of its own, so clients run in parallel.
    @Suite("Client matrix", .timeLimit(.minutes(3)))
    struct Matrix {
        /// 16 MiB: the size issue 14 names.
        static let size = 16 << 20
        /// One client run's limit: well above a 16 MiB transfer on a busy 2-core
        /// machine (seconds), well below the suite's time limit.
        static let runLimit = Duration.seconds(60)

        /// A fived whose services every test of the matrix uses, and the 16 MiB file
        /// its download services serve.
        struct World {
            let environment: TestEnvironment
            let blob: String
            let blobHash: String

            static func make() async throws -> World {
                let environment = try await TestEnvironment.make()
                let bytes = try environment.directory.randomFile("blob.bin", count: Matrix.size)
                let hash = try await Tools.sha256(bytes, scratch: environment.directory)
                return World(environment: environment, blob: environment.directory.file("blob.bin"), blobHash: hash)
            }

            /// Where the output-first service of `form` writes the hash of what it read.
            func outputFirstReport(_ form: ClientForm) -> String { environment.directory.file("output-first-\(form).txt") }

            var options: FivedOptions {
                var services: [TestService] = [
                    .exec("sha256", "/usr/bin/sha256sum"),
                    .exec("download", "/bin/cat", blob),
                    .exec("zero", "/bin/sh", "-c", "echo zero"),
                    .exec("three", "/bin/sh", "-c", "echo three; exit 3"),
                    .exec("killed", "/bin/sh", "-c", "kill -9 $$"),
                    // Reads to the caller's EOF, then writes 16 MiB.
                    .exec("input-first", "/bin/sh", "-c", "cat >/dev/null; exec /bin/cat \(blob)"),
                ]
                for form in ClientForm.allCases {
                    services.append(
                        .exec(
                            "output-first-\(form)", PythonClient.python, ClientPrograms.path("output_first_service.py"),
                            outputFirstReport(form)))
                }
                var options = FivedOptions(services: services)
                // Every exec round opens a dozen connections at once.
                options.extraTOML = "[limits]\nmax_startups_per_source = 64\n"
                return options
            }

            func withFived<R>(_ body: (Fived) async throws -> R) async throws -> R {
                try await environment.withLowPriorityFived(options, body)
            }
        }

        /// Runs `form` for each form at once, returning the runs in form order.
        static func eachForm(
            _ forms: [ClientForm] = ClientForm.allCases, _ body: @escaping @Sendable (ClientForm) async throws -> ClientRun
        ) async throws -> [ClientRun] {
            try await withThrowingTaskGroup(of: ClientRun.self) { group in
                for form in forms { group.addTask { try await body(form) } }
                let runs = try await group.reduce(into: []) { $0.append($1) }
                return runs.sorted { ClientForm.allCases.firstIndex(of: $0.form)! < ClientForm.allCases.firstIndex(of: $1.form)! }
            }
        }

        /// A fresh world's fived, with `client` running the service `service(form)` names
        /// in every form at once, sent the 16 MiB blob or nothing; each run must have
        /// succeeded, and then goes to `check`.
        static func runEveryForm(
            _ client: MatrixClient, sendingBlob: Bool, _ service: @escaping @Sendable (ClientForm) -> String,
            check: (ClientRun, Fived, World) async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            let world = try await World.make()
            try await world.withFived { fived in
                let driver = try await client.client(for: fived)
                let input = sendingBlob ? world.blob : nil
                let runs = try await eachForm { form in
                    try await driver.run(form, service(form), input: input, timeout: runLimit)
                }
                for run in runs {
                    #expect(run.clientSucceeded, "\(run)", sourceLocation: sourceLocation)
                    try await check(run, fived, world)
                }
            }
        }

        /// Expects `run`'s output to be the 16 MiB blob; `differs` says what it means if not.
        static func expectBlob(
            _ run: ClientRun, _ fived: Fived, _ world: World, differs: String, sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            #expect(run.stdout.count == size, "\(run.client) \(run.form): \(run.stdout.count) of \(size) bytes; \(run)", sourceLocation: sourceLocation)
            let got = try await Tools.sha256(run.stdout, scratch: fived.directory)
            #expect(got == world.blobHash, "\(run.client) \(run.form): \(differs)", sourceLocation: sourceLocation)
        }

        /// Expects the `channel closed` line of `run`'s channel to count all 16 MiB in
        /// `field` (`bytes_in` or `bytes_out`).
        static func expectLoggedSize(_ fived: Fived, _ run: ClientRun, _ field: String, sourceLocation: SourceLocation = #_sourceLocation) async {
            let closed = await closedLine(fived, run.service, run.form)
            #expect(
                closed?[field] == "\(size)", "\(run.client) \(run.form): \(closed.map { "\($0)" } ?? "no channel closed line")",
                sourceLocation: sourceLocation)
        }

        /// The `channel closed` line of the one channel of `service` in `form`.
        static func closedLine(_ fived: Fived, _ service: String, _ form: ClientForm) async -> LogLine? {
            await fived.waitForLog { $0.message == "channel closed" && $0["service"] == service && $0["form"] == form.logged }
        }

        @Test("the clients of the matrix, their versions, and any that cannot run here")
        func versions() async throws {
            let scratch = try TestDirectory()
            var lines: [String] = []
            for client in MatrixClient.allCases {
                if let missing = client.missing {
                    lines.append("\(client): SKIPPED: \(missing)")
                } else {
                    let version = await client.version(scratch: scratch)
                    lines.append("\(client): \(version)")
                    #expect(version != "?" && !version.hasPrefix("? "), "\(client) did not report a version")
                }
            }
            print("Client matrix:\n  " + lines.joined(separator: "\n  "))
            let missing = MatrixClient.allCases.compactMap { client in client.missing.map { "\(client): \($0)" } }
            if !missing.isEmpty {
                try Test.cancel("not installed here, so not in the matrix: \(missing.joined(separator: "; "))")
            }
        }

        @Test(
            "16 MiB upload through sha256sum in every form: the hash, bytes_in and the form fived logged",
            arguments: MatrixClient.installed)
        func upload(client: MatrixClient) async throws {
            try await Self.runEveryForm(client, sendingBlob: true) { _ in
                "sha256"
            } check: { run, fived, world in
                #expect(sha256sumOutput(run.process) == world.blobHash, "\(run)")
                await Self.expectLoggedSize(fived, run, "bytes_in")
            }
        }

        @Test(
            "16 MiB download from /bin/cat in every form: the hash, bytes_out and the form fived logged",
            arguments: MatrixClient.installed)
        func download(client: MatrixClient) async throws {
            try await Self.runEveryForm(client, sendingBlob: false) { _ in
                "download"
            } check: { run, fived, world in
                try await Self.expectBlob(run, fived, world, differs: "the download differs from the file")
                await Self.expectLoggedSize(fived, run, "bytes_out")
            }
        }

        /// Five rounds, because a lost exit report depends on timing: which of the
        /// service's end and the client's CLOSE comes first.
        @Test(
            "exit-status 0 and 3 and exit-signal KILL over exec and subsystem, five rounds, as the client reports them",
            arguments: MatrixClient.installed)
        func exitReports(client: MatrixClient) async throws {
            let world = try await World.make()
            try await world.withFived { fived in
                let driver = try await client.client(for: fived)
                let cases: [(service: String, code: Int32?, output: String)] = [
                    ("zero", 0, "zero\n"), ("three", 3, "three\n"), ("killed", nil, ""),
                ]
                var failures: [String] = []
                for round in 1...5 {
                    let runs = try await withThrowingTaskGroup(of: (Int32?, String, ClientRun).self) { group in
                        for form in [ClientForm.exec, .subsystem] {
                            for (service, code, output) in cases {
                                group.addTask {
                                    (code, output, try await driver.run(form, service, input: nil, timeout: Self.runLimit))
                                }
                            }
                        }
                        return try await group.reduce(into: []) { $0.append($1) }
                    }
                    for (code, output, run) in runs {
                        let expected = client.expected(exitCode: code)
                        var wrong: [String] = []
                        if !run.clientSucceeded { wrong.append("the client failed") }
                        if run.outcome != expected.outcome { wrong.append("reported \(run.outcome), want \(expected.outcome)") }
                        if run.process.exitStatus != expected.processStatus {
                            wrong.append("exited \(run.process.termination.map { "\($0)" } ?? "-"), want exit \(expected.processStatus)")
                        }
                        if run.process.stdoutText != output {
                            wrong.append("stdout \(run.process.stdoutText.debugDescription), want \(output.debugDescription)")
                        }
                        if !wrong.isEmpty {
                            failures.append("round \(round), \(run.form) \(run.service): \(wrong.joined(separator: "; "))\n\(run.process)")
                        }
                    }
                }
                let unusual = fived.logLines.filter { !["info", "debug", "trace"].contains($0.level) && $0.message != "generated host key" }
                #expect(
                    failures.isEmpty,
                    """
                    \(client): \(failures.count) of 30 runs wrong:
                    \(failures.joined(separator: "\n"))
                    fived's notices and warnings: \(unusual.isEmpty ? "none" : unusual.map(\.raw).joined(separator: "\n"))
                    """)
            }
        }

        /// Exit reports are the business of `exitReports`; here only bytes count.
        @Test(
            "half-close: the service ends its output first (shutdown) and the client's 16 MiB upload still arrives whole",
            .enabled(if: access(PythonClient.python, X_OK) == 0, "the service is a Python script: apt-get install python3"),
            arguments: MatrixClient.installed)
        func serviceEndsOutputFirst(client: MatrixClient) async throws {
            try await Self.runEveryForm(client, sendingBlob: true) { form in
                "output-first-\(form)"
            } check: { run, _, world in
                #expect(run.process.stdoutText == "ready\n", "\(run)")
                let report = world.outputFirstReport(run.form)
                let written = await eventually { access(report, F_OK) == 0 }
                let text = (try? String(contentsOfFile: report, encoding: .utf8)) ?? ""
                #expect(
                    written && text == "\(world.blobHash) \(Self.size)\n",
                    "\(client) \(run.form): the service read \(text.isEmpty ? "nothing it reported" : text), want \(world.blobHash) \(Self.size)\n\(run)")
            }
        }

        /// Exit reports are the business of `exitReports`; here only bytes count.
        @Test(
            "half-close: the client sends EOF first and the service's 16 MiB that follow still arrive whole",
            arguments: MatrixClient.installed)
        func clientEndsInputFirst(client: MatrixClient) async throws {
            try await Self.runEveryForm(client, sendingBlob: false) { _ in
                "input-first"
            } check: { run, fived, world in
                try await Self.expectBlob(run, fived, world, differs: "the bytes after the client's EOF differ from the file")
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A real etcd (Debian's etcd-server) on loopback for the fleet tests: a data
/// directory in the test directory, client and peer ports chosen by binding
/// port 0 and closing (etcd cannot be told to bind port 0 and report it), and
/// a fresh pair tried again when another process took one meanwhile.
final class EtcdProcess: Sendable {
    let directory: TestDirectory
    let clientPort: UInt16
    let peerPort: UInt16
    private let current: Mutex<ChildProcess?>
    private let starts = Atomic<Int>(0)

    /// The client URL for `etcd_endpoints`.
    var endpoint: String { "http://127.0.0.1:\(clientPort)" }

    /// etcd's path, or nil when etcd-server is not installed.
    static var binary: String? { which("etcd") }

    private init(directory: TestDirectory, clientPort: UInt16, peerPort: UInt16, process: ChildProcess) {
        self.directory = directory
        self.clientPort = clientPort
        self.peerPort = peerPort
        self.current = Mutex(process)
    }

    /// Starts etcd with a new data directory; up to five pairs of ports.
    static func start(in directory: TestDirectory) async throws -> EtcdProcess {
        var lastError = "etcd did not start"
        for _ in 0..<5 {
            let client = try Sockets.unusedPort()
            let peer = try Sockets.unusedPort()
            guard client != peer else { continue }
            switch try await launch(directory: directory, clientPort: client, peerPort: peer, attempt: 0) {
            case .success(let process):
                return EtcdProcess(directory: directory, clientPort: client, peerPort: peer, process: process)
            case .failure(let error):
                lastError = error.description
            }
        }
        throw HarnessError(lastError)
    }

    private static func launch(directory: TestDirectory, clientPort: UInt16, peerPort: UInt16, attempt: Int) async throws
        -> Result<ChildProcess, HarnessError>
    {
        guard let etcd = binary else { throw HarnessError("etcd is not installed (apt-get install etcd-server)") }
        let client = "http://127.0.0.1:\(clientPort)"
        let peer = "http://127.0.0.1:\(peerPort)"
        let process = try ChildProcess.spawn(
            etcd,
            [
                "--name", "fleet-test", "--data-dir", directory.file("etcd-data"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "fleet-test=\(peer)",
                "--heartbeat-interval", "50", "--election-timeout", "400",
            ],
            environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path],
            outputPrefix: directory.file("etcd-\(clientPort)-\(attempt)"))
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let log = process.stderr
            if log.contains("serving insecure client requests on 127.0.0.1:\(clientPort)") {
                return .success(process)
            }
            if let ended = process.poll() {
                return .failure(HarnessError("etcd ended (\(ended)): \(log.suffix(600))"))
            }
            if log.contains("address already in use") {
                await process.killGroup()
                return .failure(HarnessError("etcd: a port was taken: \(log.suffix(300))"))
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        await process.killGroup()
        return .failure(HarnessError("etcd did not serve within 20 s: \(process.stderr.suffix(600))"))
    }

    /// Stops etcd with `signal` and waits for it to end.
    func stop(signal: Int32 = SIGTERM) async {
        guard let process = current.withLock({ $0 }) else { return }
        process.signal(signal)
        if await process.wait(timeout: .seconds(10)) == nil { await process.killGroup() }
        current.withLock { $0 = nil }
    }

    /// Starts etcd again on the same ports and data directory.
    func restart() async throws {
        let attempt = starts.add(1, ordering: .relaxed).newValue
        switch try await Self.launch(directory: directory, clientPort: clientPort, peerPort: peerPort, attempt: attempt) {
        case .success(let process): current.withLock { $0 = process }
        case .failure(let error): throw error
        }
    }

    /// Everything etcd logged (the running process's).
    var logText: String { current.withLock { $0?.stderr ?? "" } }
}

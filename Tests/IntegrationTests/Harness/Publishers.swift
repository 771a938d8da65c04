#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension TestEnvironment {
    /// New Ed25519 keys, one per name, each allowed to publish what `pattern` allows
    /// (`permitlisten="PATTERN"`); authorized_keys then holds the default key and these.
    func newPublisherKeys(_ names: [String], permitlisten pattern: String, comment: String? = nil) async throws -> [ClientKey] {
        var keys: [ClientKey] = []
        for name in names { keys.append(try await newKey(.ed25519, name: name, comment: comment)) }
        try setAuthorizedKeys([key.publicLine] + keys.map { $0.authorizedLine(options: "permitlisten=\"\(pattern)\"") })
        return keys
    }

    /// One such key, named `name`.
    func newPublisherKey(permitlisten pattern: String, name: String = "publisher", comment: String? = nil) async throws -> ClientKey {
        try await newPublisherKeys([name], permitlisten: pattern, comment: comment)[0]
    }
}

extension Fived {
    /// The arguments of a stock-ssh publisher: `-N -o ExitOnForwardFailure=yes -R FORWARD...`.
    static func publisherArguments(_ forwards: [String]) -> [String] {
        ["-N", "-o", "ExitOnForwardFailure=yes"] + forwards.flatMap { ["-R", $0] }
    }

    /// Starts `ssh EXTRA -N -R FORWARD...` with `key` and returns at once.
    func spawnPublisher(_ forwards: String..., key: ClientKey, extra: [String] = [], name: String) throws -> ChildProcess {
        try spawnSSH(extra + Self.publisherArguments(forwards), identity: .key(key), name: name)
    }

    /// Starts `ssh EXTRA -N -R FORWARD` with `key` and waits until fived logs the publication.
    func startPublisher(key: ClientKey, forward: String, extra: [String] = []) async throws -> ChildProcess {
        let name = String(forward.prefix { $0 != ":" })
        let publisher = try spawnPublisher(forward, key: key, extra: extra, name: "ssh-R-\(name)")
        let published = await waitForLog(timeout: .seconds(15)) {
            $0.message == "published" && $0["service"] == name && $0["fingerprint"] == key.fingerprint
        }
        guard published != nil, publisher.isRunning else {
            publisher.signal(SIGKILL)
            throw HarnessError("\(forward) was not published: \(publisher.stderr)\n\(logText)")
        }
        return publisher
    }

    /// Runs `ssh -N -R FORWARD` to its end: for a publication that must be refused
    /// (ExitOnForwardFailure makes ssh exit 255 then).
    func publishing(_ forward: String, identity: Identity = .defaultKey, timeout: Duration = .seconds(20)) async throws -> ProcessResult {
        try await ssh(Self.publisherArguments([forward]), identity: identity, timeout: timeout)
    }

    /// Sends `probe` through `ssh -W NAME:1` until that exits 255 (nothing serves NAME),
    /// for up to `timeout`: whether it did, and the last result.
    func waitUntilUnpublished(_ name: String, probe: [UInt8], timeout: Duration = .seconds(10)) async throws -> (gone: Bool, last: ProcessResult?) {
        var last: ProcessResult?
        let gone = try await eventually(timeout: timeout) {
            last = try await stdio(name, probe)
            return last?.exitStatus == 255
        }
        return (gone, last)
    }
}

extension TestEnvironment {
    /// Where a publishing test starts: a fresh environment whose keys `names` may
    /// publish `pattern`, an echo server for their local target, and fived started
    /// with `options`; `body` gets fived, the keys and the target.
    static func withPublishers<R>(
        _ names: [String], permitlisten pattern: String, comment: String? = nil, options: FivedOptions = FivedOptions(),
        _ body: (Fived, [ClientKey], EchoServer) async throws -> R
    ) async throws -> R {
        try await withPublishingEnvironment(names, permitlisten: pattern, comment: comment) { environment, keys, target in
            try await environment.withFived(options) { fived in try await body(fived, keys, target) }
        }
    }

    /// The same before any fived starts, for tests that start their own (a fleet):
    /// `body` gets the environment, the keys and the target.
    static func withPublishingEnvironment<R>(
        _ names: [String], permitlisten pattern: String, comment: String? = nil,
        _ body: (TestEnvironment, [ClientKey], EchoServer) async throws -> R
    ) async throws -> R {
        let environment = try await make()
        let keys = try await environment.newPublisherKeys(names, permitlisten: pattern, comment: comment)
        let target = try EchoServer.tcp()
        defer { target.stop() }
        return try await body(environment, keys, target)
    }

    /// The same with one key, `publisher`.
    static func withPublisher<R>(
        permitlisten pattern: String, comment: String? = nil, options: FivedOptions = FivedOptions(),
        _ body: (Fived, ClientKey, EchoServer) async throws -> R
    ) async throws -> R {
        try await withPublishers(["publisher"], permitlisten: pattern, comment: comment, options: options) { fived, keys, target in
            try await body(fived, keys[0], target)
        }
    }
}

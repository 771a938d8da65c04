import FivedCore
import Synchronization

/// The names published with `tcpip-forward` (SPEC "Publishing a name"): one
/// structure, one lock. Nothing is called out while the lock is held.
final class Publications: Sendable {
    /// One live publication.
    struct Publication: Sendable {
        /// The publisher's worker and connection (connection ids are unique in the process).
        let worker: Worker
        let connectionID: UInt64
        /// The bind address and port exactly as the publisher sent them.
        let address: String
        let port: UInt32
        /// The publisher's key (a takeover needs the same key).
        let fingerprint: String

        /// The port the publisher's client matches forwarded-tcpip opens against:
        /// the one it asked for, or for port 0 the one fived allocated (1), as
        /// OpenSSH's client records it from the reply.
        var boundPort: UInt32 { port == 0 ? 1 : port }
    }

    /// The bind port by which a publisher asks for a PROXY v2 header on each
    /// channel (`ssh -R NAME:2:HOST:PORT`); any other port gives the raw stream.
    static let proxyProtocolPort: UInt32 = 2

    private let table = Mutex<[ServiceName: Publication]>([:])
    /// Told of every name released, after the lock (the fleet's registry deletes it there).
    private let releaseObserver = Mutex<(@Sendable (ServiceName) -> Void)?>(nil)

    /// Sets who hears of released names (once, before any worker runs).
    func observeReleases(_ body: @escaping @Sendable (ServiceName) -> Void) {
        releaseObserver.withLock { $0 = body }
    }

    private func released(_ names: [ServiceName]) {
        guard !names.isEmpty, let observer = releaseObserver.withLock({ $0 }) else { return }
        for name in names { observer(name) }
    }

    /// Claims `name` for a publisher; false when it is already published.
    func claim(_ name: ServiceName, _ publication: Publication) -> Bool {
        table.withLock { t in
            guard t[name] == nil else { return false }
            t[name] = publication
            return true
        }
    }

    /// Releases `name` if `connectionID` holds it; true when it did.
    @discardableResult
    func release(_ name: ServiceName, connectionID: UInt64) -> Bool {
        let done = table.withLock { t in
            guard t[name]?.connectionID == connectionID else { return false }
            t.removeValue(forKey: name)
            return true
        }
        if done { released([name]) }
        return done
    }

    /// Releases every name a connection holds; returns them.
    func releaseAll(connectionID: UInt64) -> [ServiceName] {
        let mine = table.withLock { t in
            let mine = t.filter { $0.value.connectionID == connectionID }.map(\.key)
            for name in mine { t.removeValue(forKey: name) }
            return mine
        }
        released(mine)
        return mine
    }

    func lookup(_ name: ServiceName) -> Publication? {
        table.withLock { $0[name] }
    }

    /// Every published name, sorted.
    var names: [ServiceName] {
        table.withLock { Array($0.keys) }.sorted()
    }
}

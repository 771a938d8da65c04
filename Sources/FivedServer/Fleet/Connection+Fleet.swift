import FivedCore
import FivedFleet
import FivedSystem
import LibSSH
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A channel that crossed from one node to another: `entry->owner` for the
/// log lines of both nodes, and on the owner the caller the entry node relayed.
struct FleetHop {
    let hop: String
    let caller: RelayedCaller?

    /// Adds `node_hop`, and on the owner node the relayed caller's identity in
    /// place of the peer node's.
    func annotate(_ metadata: inout Logger.Metadata) {
        metadata["node_hop"] = "\(hop)"
        guard let caller else { return }
        metadata["user"] = "\(caller.user)"
        metadata["fingerprint"] = "\(caller.key.fingerprint)"
        metadata["client"] = "\(Endpoint(address: caller.clientAddress, port: caller.clientPort))"
    }
}

extension Connection {
    // MARK: Owner side: a peer node relays its callers here

    /// Public-key authentication with a key of `peers_authorized_keys`: the
    /// connection becomes a peer node's (named by its SSH user name), which may
    /// only relay callers to this node's exported and published names. Returns
    /// false when the key is not a peer's (ordinary authentication follows).
    func authenticatePeer(_ message: SSHMessage, user: String, blob: PublicKeyBlob, verified: Bool) -> Bool {
        guard let fleet = worker.fleet else { return false }
        let candidates = worker.authorizedKeys.ownKeys(for: user, patterns: [fleet.cluster.peersAuthorizedKeys])
        guard
            case .accepted(let entry) = KeyMatcher.match(
                presented: blob, candidates: candidates, clientAddress: client.address, now: Int64(time(nil)))
        else { return false }
        guard let node = NodeName(user), node != fleet.me else {
            logger.info(
                "authentication failed",
                metadata: [
                    "user": "\(ServiceName.printable(user))", "fingerprint": "\(blob.fingerprint)", "client": "\(client)",
                    "reason": "a peer node key must log in with its node name as the user",
                ])
            message.refuse()
            return true
        }
        guard verified else {
            message.acceptPublicKeyProbe()
            return true
        }
        caller = Caller(user: user, key: entry, address: client.address, port: client.port)
        peerNode = node
        message.acceptAuthentication()
        releaseStartupSlot()
        logger.info(
            "peer node authenticated",
            metadata: [
                "node": "\(node)", "fingerprint": "\(blob.fingerprint)", "client": "\(client)", "key_file": "\(entry.file):\(entry.line)",
            ])
        return true
    }

    /// A channel open from a peer node: a direct-tcpip open whose originator
    /// carries the relayed caller (`RelayedCaller`), for a name this node owns
    /// (`NAME.THIS-NODE` of an exported service, or a published name). The
    /// name's allow list is checked again here, against the relayed caller.
    func openRelayed(_ message: SSHMessage, _ open: SSHMessage.ChannelOpen) {
        guard let fleet = worker.fleet, let from = peerNode else { return message.refuse() }
        guard open.type == .directTCPIP, let destination = open.destination, let originator = open.originator,
            RelayedCaller.isRelayed(originator.host)
        else {
            logger.info(
                "channel refused",
                metadata: [
                    "node": "\(from)", "client": "\(client)", "reason": "a peer node may only relay callers (direct-tcpip with a relayed caller)",
                ])
            return message.refuse()
        }
        let relayed: RelayedCaller
        do {
            relayed = try RelayedCaller(decoding: originator.host)
        } catch {
            logger.info("channel refused", metadata: ["node": "\(from)", "client": "\(client)", "reason": "\(error.message)"])
            return message.refuse()
        }
        let hop = FleetHop(hop: "\(relayed.entryNode)->\(fleet.me)", caller: relayed)
        let caller = relayed.caller
        let config = worker.config.snapshot
        func refuse(_ why: String) {
            var meta: Logger.Metadata = ["service": "\(ServiceName.printable(destination.host))", "form": "relayed", "reason": "\(why)"]
            hop.annotate(&meta)
            logger.info("channel refused", metadata: meta)
            message.refuse()
        }
        guard relayed.entryNode == from else { return refuse("relayed by node \(from) but names node \(relayed.entryNode) as its entry") }
        guard let name = ServiceName(destination.host) else { return refuse("invalid service name") }
        if let service = exportedService(name, config) {
            if let allow = service.allow, !AccessPolicy.allowListAdmits(allow, caller: caller) {
                return refuse("\(OpenRefusal.notAllowed(name))")
            }
        } else if worker.publications.lookup(name) == nil {
            return refuse("no exported or published name \(name) on this node")
        }
        guard takeKeyChannel() else { return message.refuse() }
        let channelID = makeChannelID()
        let handOff = CallerHandOff(
            service: name, caller: caller, clientAddress: relayed.clientAddress, clientPort: relayed.clientPort,
            localAddress: relayed.localAddress, localPort: relayed.localPort, channelID: channelID)
        let start: BackendConnector.Start
        let preamble: [UInt8]
        do {
            (start, preamble) = try startBackend(name, caller: caller, config: config, channelID: channelID, handOff: handOff)
        } catch {
            releaseKeyChannel()
            return refuse("backend unavailable: \(error)")
        }
        fleetHops[channelID] = hop
        switch start {
        case .ready(let backend):
            acceptDirect(message, backend: backend, name: name, channelID: channelID, preamble: preamble)
        case .pending(let backend):
            let pending = PendingOpen(
                connection: self, message: message, name: name, requested: name.value,
                channelID: channelID, preamble: preamble, pending: backend)
            pendingOpens[ObjectIdentifier(pending)] = pending
            worker.watchPending(pending)
        }
    }

    /// `NAME.THIS-NODE` for a configured service NAME with `export = true`.
    func exportedService(_ name: ServiceName, _ config: Configuration) -> ServiceConfig? {
        guard let fleet = worker.fleet, let (service, node) = RegistryLayout.split(name), node == fleet.me,
            let found = config.services[service], found.export
        else { return nil }
        return found
    }

    // MARK: Entry side: a caller here opens a name another node owns

    /// What the registry says of `name` for a caller on this node, when it is not
    /// a configured or published name here: reachable elsewhere (with its allow
    /// list, for the decision and `help`), unavailable, or unknown (nil).
    func fleetAccess(_ name: ServiceName, _ config: Configuration) -> ServiceAccess? {
        guard let fleet = worker.fleet else { return nil }
        if let service = exportedService(name, config) { return ServiceAccess(name: name, allow: service.allow) }
        switch fleet.registry.snapshot.resolve(name, me: fleet.me) {
        case .local: return nil
        case .remote(let remote, _): return ServiceAccess(name: name, allow: remote.allow)
        // Let the open go on to be refused with the reason (startBackend throws it).
        case .unavailable: return ServiceAccess(name: name, allow: nil)
        }
    }

    /// `help`'s fleet entries: this node's exports by their fleet names, and every name other nodes own.
    func fleetHelpEntries(_ config: Configuration) -> [ServiceAccess] {
        guard let fleet = worker.fleet else { return [] }
        var entries = Fleet.exports(of: config, me: fleet.me).keys.compactMap { name in
            exportedService(name, config).map { ServiceAccess(name: name, allow: $0.allow) }
        }
        entries += fleet.registry.snapshot.remoteNames(me: fleet.me).map { ServiceAccess(name: $0.name, allow: $0.allow) }
        return entries
    }

    /// The backend of a name another node owns: a socketpair whose other end the
    /// worker carrying the connection to that node relays over a direct-tcpip
    /// channel; the caller's open is answered when the owner answers. nil when
    /// the name is not another node's.
    func relayedBackend(_ name: ServiceName, handOff: CallerHandOff) throws(BackendFailure) -> (BackendConnector.Start, [UInt8])? {
        guard let fleet = worker.fleet, worker.publications.lookup(name) == nil else { return nil }
        let (remote, record): (RemoteName, NodeRecord)
        switch fleet.registry.snapshot.resolve(name, me: fleet.me) {
        case .local: return nil
        case .unavailable(let why): throw BackendFailure(.published, "fleet registry: \(why)")
        case .remote(let r, let n): (remote, record) = (r, n)
        }
        guard let caller = handOff.caller, let linkWorker = fleet.linkWorker(for: remote.owner) else {
            throw BackendFailure(.published, "no caller to relay")
        }
        let (open, stream, timeout) = try joinedPair()
        let now = MonotonicClock.now
        let channelID = handOff.channelID ?? makeChannelID()
        let relayed = RelayedCaller(
            entryNode: fleet.me, caller: caller, localAddress: handOff.localAddress,
            localPort: handOff.localPort, channelID: channelID)
        let hop = "\(fleet.me)->\(remote.owner)"
        fleetHops[channelID] = FleetHop(hop: hop, caller: nil)
        let request = RelayRequest(
            owner: remote.owner, record: record, name: name, originator: relayed.encoded, originatorPort: caller.port, hop: hop,
            replyTo: worker, token: open.token, deadline: now + timeout)
        linkWorker.perform { $0.startRelay(request, stream: stream) }
        return (.pending(.publisher(open)), [])
    }

    // MARK: This connection is a link to a peer (we are its client)

    /// Node-to-node connections take fewer requests than callers: over a link
    /// this node opened, the peer may ask for keepalives only; a peer logged in
    /// here may send keepalives and relayed channel opens (Connection's usual
    /// path, to `openRelayed`), and may publish nothing. True when handled here.
    func handleFleetMessage(_ message: SSHMessage) -> Bool {
        if case .globalRequest(let request) = message.kind {
            if case .keepalive = request { message.acceptGlobalRequest(boundPort: 0) } else { message.refuse() }
            return true
        }
        guard peerLink != nil else { return false }
        message.refuse()
        return true
    }

    /// Forgets the node hops of channels that never opened (a relay refused
    /// after it was noted): those of live channels and opens in flight stay.
    func pruneFleetHops() {
        guard !fleetHops.isEmpty else { return }
        var live = Set(channels.values.map(\.id))
        for pending in pendingOpens.values { live.insert(pending.channelID) }
        fleetHops = fleetHops.filter { live.contains($0.key) }
    }

    /// A relayed channel on a link ended: count it for the peer.
    func peerLinkChannelFinished(_ channel: ServiceChannel) {
        guard let link = peerLink else { return }
        worker.fleet?.updatePeer(link.node) {
            $0.channelsOpen = max(0, $0.channelsOpen - 1)
            $0.bytesIn += channel.bytesIn
            $0.bytesOut += channel.bytesOut
        }
    }
}

extension Connection {
    // MARK: Publishing in a fleet

    /// The node that holds `name` in the registry, when it is another node.
    func fleetOwner(of name: ServiceName) -> NodeName? {
        guard let fleet = worker.fleet, let owner = fleet.registry.snapshot.names[name]?.owner, owner != fleet.me else { return nil }
        return owner
    }

    /// Registers a name just published here in the fleet registry; the
    /// tcpip-forward is answered when etcd has (or, with etcd away, at once:
    /// the name works here and is registered when etcd returns). False outside a fleet.
    func registerInFleet(_ message: SSHMessage, _ name: ServiceName, meta: Logger.Metadata, boundPort: UInt32) -> Bool {
        guard let fleet = worker.fleet else { return false }
        pendingRegistrations[name] = message
        let id = id
        let worker = worker
        fleet.registry.claim(name, record: NameRecord(node: fleet.me, kind: .publish, allow: nil)) { result in
            worker.perform { $0.connectionsByID[id]?.publicationRegistered(name, result, meta: meta, boundPort: boundPort) }
        }
        return true
    }

    private func publicationRegistered(_ name: ServiceName, _ result: Registry.ClaimResult, meta: Logger.Metadata, boundPort: UInt32) {
        guard let message = pendingRegistrations.removeValue(forKey: name), !closing else { return }
        switch result {
        case .registered:
            logger.info("published", metadata: meta.merging(["registry": "registered"]) { $1 })
            message.acceptGlobalRequest(boundPort: UInt16(truncatingIfNeeded: boundPort))
        case .deferred(let why):
            logger.info("published", metadata: meta.merging(["registry": "deferred until etcd returns (\(why))"]) { $1 })
            message.acceptGlobalRequest(boundPort: UInt16(truncatingIfNeeded: boundPort))
        case .taken(let owner):
            worker.publications.release(name, connectionID: id)
            logger.info("publish refused", metadata: meta.merging(["reason": "already published (by node \(owner.map { "\($0)" } ?? "?"))"]) { $1 })
            message.refuse()
        }
    }
}

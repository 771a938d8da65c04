import FivedCore
import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// Connections accepted on an SSH listener with `tcpmux_on_ssh_port = true`
/// whose protocol is not known yet: it waits, on the acceptor's thread, for
/// their first bytes (looked at with MSG_PEEK, so libssh or the TCPMUX code
/// still reads them) or for `SharedPortOpening.silenceMilliseconds` of silence,
/// and says which protocol each speaks (`SharedPortOpening`).
///
/// Nothing here blocks: sockets are peeked with MSG_DONTWAIT, readiness comes
/// from an edge-triggered epoll set whose descriptor the acceptor polls beside
/// its listeners, and the acceptor's poll timeout covers the earliest deadline.
/// Workers never see a connection before it is decided. Each waiting
/// connection holds the startup slot it was admitted with (`max_startups`,
/// `max_startups_per_source`), as an SSH connection before authentication does,
/// so the number waiting here is bounded by those limits; connections beyond
/// them wait in the acceptor's startup queue first, unread.
final class SharedPortSniffer {
    /// A connection whose protocol is not known yet.
    final class Arrival {
        let socket: Descriptor
        let client: Endpoint
        let local: Endpoint
        /// The `max_startups` slot it holds while waiting.
        let slot: StartupSlot
        /// When silence makes it SSH.
        let deadline: Int64
        var registration = PollRegistration.none

        init(socket: Descriptor, client: Endpoint, local: Endpoint, slot: StartupSlot, deadline: Int64) {
            self.socket = socket
            self.client = client
            self.local = local
            self.slot = slot
            self.deadline = deadline
        }
    }

    /// What became of a connection.
    enum Outcome: Equatable {
        /// It speaks SSH: `silent` when it sent nothing (it waits for the server's identification string).
        case ssh(silent: Bool)
        /// It sent a TCPMUX request (or anything that is not `SSH-`).
        case tcpmux
        /// It closed, or its socket failed, before it said anything; why, for the log.
        case gone(String)
    }

    /// nil when epoll could not be had: then connections are judged once, at
    /// once, and taken for SSH unless their first bytes are already there.
    private let poller: Poller<Arrival>?
    private var arrivals: [ObjectIdentifier: Arrival] = [:]

    init() {
        poller = try? Poller<Arrival>()
    }

    /// The descriptor the acceptor polls (readable when a waiting connection has
    /// news); -1, which poll(2) ignores, without a poller.
    var descriptor: Int32 { poller?.descriptor ?? -1 }

    /// Connections waiting now.
    var count: Int { arrivals.count }

    /// The earliest time a waiting connection's silence ends.
    var nextDeadline: Int64? { arrivals.values.lazy.map(\.deadline).min() }

    /// Takes an accepted connection (blocking or not: it is only ever peeked
    /// without waiting). Returns its outcome when its first bytes have arrived
    /// already (most SSH clients send at once); otherwise it waits, and a later
    /// `decide` answers.
    func watch(
        _ socket: Descriptor, client: Endpoint, local: Endpoint, slot: StartupSlot, now: Int64
    ) -> (Arrival, Outcome)? {
        let arrival = Arrival(
            socket: socket, client: client, local: local, slot: slot, deadline: now + SharedPortOpening.silenceMilliseconds)
        if let outcome = Self.look(at: arrival, silenceOver: poller == nil) { return (arrival, outcome) }
        arrivals[ObjectIdentifier(arrival)] = arrival
        poller!.update(
            &arrival.registration, fd: socket.rawValue, events: PollEvents.readable | PollEvents.hangup | PollEvents.edgeTriggered,
            target: arrival)
        // Should epoll refuse the socket (registration.token 0), its deadline still decides it.
        return nil
    }

    /// The connections that can be decided now: those whose socket has news, and
    /// those silent past their deadline. They are no longer watched.
    func decide(now: Int64) -> [(Arrival, Outcome)] {
        guard let poller, !arrivals.isEmpty else { return [] }
        var decided: [(Arrival, Outcome)] = []
        poller.wait(timeoutMilliseconds: 0) { arrival, _ in
            guard arrivals[ObjectIdentifier(arrival)] != nil,
                let outcome = Self.look(at: arrival, silenceOver: now >= arrival.deadline)
            else { return }
            forget(arrival)
            decided.append((arrival, outcome))
        }
        for arrival in arrivals.values where now >= arrival.deadline {
            forget(arrival)
            decided.append((arrival, Self.look(at: arrival, silenceOver: true) ?? .ssh(silent: true)))
        }
        return decided
    }

    /// Every connection still waiting, no longer watched (fived is stopping).
    func removeAll() -> [Arrival] {
        let all = Array(arrivals.values)
        for arrival in all { forget(arrival) }
        return all
    }

    private func forget(_ arrival: Arrival) {
        arrivals.removeValue(forKey: ObjectIdentifier(arrival))
        poller?.remove(&arrival.registration)
    }

    /// Peeks at what the client sent so far; nil while undecided.
    private static func look(at arrival: Arrival, silenceOver: Bool) -> Outcome? {
        var head = [UInt8](repeating: 0, count: SharedPortOpening.bytesNeeded)
        let result: IOResult<Int>
        do {
            result = try head.withUnsafeMutableBytes { try Syscall.peek(arrival.socket.rawValue, into: $0) }
        } catch {
            return .gone((error as? SystemError)?.reason ?? "\(error)")
        }
        let count: Int
        switch result {
        case .processed(0): return .gone("closed before sending anything")
        case .processed(let n): count = n
        case .wouldBlock: count = 0
        }
        switch SharedPortOpening(firstBytes: head[0..<count], silenceOver: silenceOver) {
        case .ssh: return .ssh(silent: count == 0)
        case .tcpmux: return .tcpmux
        case .undecided: return nil
        }
    }
}

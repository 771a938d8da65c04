import FivedCore
import FivedSystem
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// The stdio form (`fived-connect HOST SERVICE`) and `--list`: one channel to
/// one service, joined to stdin and stdout, over one SSH connection.
public struct StdioSession {
    let dialer: Dialer
    let service: String
    /// `--list`: no input; stdin is left alone.
    let readsStdin: Bool

    public init(dialer: Dialer, service: String, readsStdin: Bool) {
        self.dialer = dialer
        self.service = service
        self.readsStdin = readsStdin
    }

    /// Runs to the end; returns the exit status (0 done, 1 refused, 255 connection).
    public func run() -> Int32 {
        let diagnostics = dialer.diagnostics
        let client: SSHClient
        do {
            client = try dialer.dial()
        } catch {
            diagnostics.error(error.message)
            return error.exitStatus
        }
        guard let channel = client.makeChannel() else {
            diagnostics.error("\(dialer.shownHost): could not allocate a channel")
            client.disconnect()
            return 255
        }
        let relay = LocalChannel(
            channel: channel, service: service, readFD: readsStdin ? 0 : nil, writeFD: 1,
            ownsDescriptors: false, originator: ("127.0.0.1", 0), opening: true)
        // Blocking: one answer, bounded by ConnectTimeout.
        _ = relay.advanceOpen()
        if let refusal = relay.refusal {
            if client.isConnected {
                diagnostics.error("\(dialer.shownHost) refused service '\(service)': \(refusal)")
                channel.release()
                client.disconnect()
                return 1
            }
            diagnostics.error("connection to \(dialer.shownHost) lost while opening '\(service)': \(refusal)")
            return 255
        }
        diagnostics.debug("channel to '\(service)' open")

        let stdinFlags = Syscall.statusFlags(0)
        let stdoutFlags = Syscall.statusFlags(1)
        defer {
            if readsStdin, let stdinFlags { Syscall.setStatusFlags(0, stdinFlags) }
            if let stdoutFlags { Syscall.setStatusFlags(1, stdoutFlags) }
        }
        if readsStdin { try? Syscall.setNonBlocking(0) }
        try? Syscall.setNonBlocking(1)

        let reactor: Reactor
        do {
            reactor = try Reactor()
            client.setBlocking(false)
            try reactor.add(client)
            try SignalPipe.install([SIGINT, SIGTERM, SIGHUP])
        } catch {
            diagnostics.error("\(dialer.shownHost): \(error)")
            return 255
        }
        reactor.set(SignalPipe.readFD, events: Int16(POLLIN)) { _ in }

        let keepalive = dialer.options.serverAliveInterval * 1000
        var nextKeepalive = MonotonicClock.now + Int64(keepalive)
        var again = true
        var status: Int32 = 0
        while true {
            var timeout: Int32 = again ? 0 : 1000
            if keepalive > 0 { timeout = min(timeout, Int32(clamping: max(0, nextKeepalive - MonotonicClock.now))) }
            reactor.poll(timeoutMilliseconds: timeout)
            if let sig = SignalPipe.take().first {
                diagnostics.debug("stopped by signal \(sig)")
                status = 128 + sig
                relay.finish(.stopping)
                break
            }
            // The server sends nothing this client must answer; drop what libssh queued.
            while let message = client.nextMessage() { message.refuse() }
            again = relay.step()
            if let reason = relay.endReason {
                if reason == .sshWriteError || reason == .channelGone {
                    diagnostics.error("connection to \(dialer.shownHost) failed: \(relay.endDescription)")
                    status = 255
                }
                break
            }
            if !client.isConnected {
                diagnostics.error("connection to \(dialer.shownHost) closed: \(client.session.lastErrorText)")
                status = 255
                break
            }
            let wanted = relay.wantedEvents
            if readsStdin {
                reactor.set(0, events: wanted.read) { [unowned relay] in relay.localEvent($0) }
            }
            reactor.set(1, events: wanted.write) { [unowned relay] in relay.localEvent($0) }
            if keepalive > 0 && MonotonicClock.now >= nextKeepalive {
                client.sendIgnore()
                nextKeepalive = MonotonicClock.now + Int64(keepalive)
            }
        }
        diagnostics.debug("channel ended: \(relay.endDescription); \(relay.bytesToServer) bytes sent, \(relay.bytesFromServer) received")
        reactor.remove(0)
        reactor.remove(1)
        reactor.remove(SignalPipe.readFD)
        reactor.remove(client)
        client.setBlocking(true)
        channel.release()
        client.disconnect()
        return status
    }
}

import FivedCore
import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// The stdio form (`fived-connect HOST SERVICE`) and `--list`: one channel to
/// one service, joined to stdin and stdout, over one SSH connection.
struct StdioSession {
    let dialer: Dialer
    let service: String
    /// `--list`: no input; stdin is left alone.
    let readsStdin: Bool

    /// Runs to the end; returns the exit status (0 done, 1 refused, 255 connection).
    func run() -> Int32 {
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
        let pump = ChannelPump(channel: channel, service: service, readFD: readsStdin ? 0 : -1, writeFD: 1,
                               ownsDescriptors: false, originator: ("127.0.0.1", 0), phase: .opening)
        // Blocking: one answer, bounded by ConnectTimeout.
        _ = pump.advanceOpen()
        if let refusal = pump.refusal {
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

        let stdinFlags = fcntl(0, F_GETFL)
        let stdoutFlags = fcntl(1, F_GETFL)
        defer {
            if readsStdin && stdinFlags >= 0 { _ = fcntl(0, F_SETFL, stdinFlags) }
            if stdoutFlags >= 0 { _ = fcntl(1, F_SETFL, stdoutFlags) }
        }
        if readsStdin { Posix.setNonBlocking(0) }
        Posix.setNonBlocking(1)

        let reactor: Reactor
        do {
            reactor = try Reactor()
            client.setBlocking(false)
            try reactor.add(client)
        } catch {
            diagnostics.error("\(dialer.shownHost): \(error.message)")
            return 255
        }
        SignalPipe.install()
        reactor.set(SignalPipe.readFD, events: Int16(POLLIN)) { _ in }

        let keepalive = dialer.options.serverAliveInterval * 1000
        var nextKeepalive = Posix.now() + Int64(keepalive)
        var again = true
        var status: Int32 = 0
        while true {
            var timeout: Int32 = again ? 0 : 1000
            if keepalive > 0 { timeout = min(timeout, Int32(clamping: max(0, nextKeepalive - Posix.now()))) }
            reactor.poll(timeoutMilliseconds: timeout)
            if let sig = SignalPipe.take() {
                diagnostics.debug("stopped by signal \(sig)")
                status = 128 + sig
                pump.finish(reason: "signal")
                break
            }
            again = pump.step()
            if pump.phase == .finished {
                if pump.endReason == "ssh write error" || pump.endReason == "channel lost" {
                    diagnostics.error("connection to \(dialer.shownHost) failed: \(pump.endReason)")
                    status = 255
                }
                break
            }
            if !client.isConnected {
                diagnostics.error("connection to \(dialer.shownHost) closed: \(client.session.lastErrorText)")
                status = 255
                break
            }
            let wanted = pump.wantedEvents
            if readsStdin {
                reactor.set(0, events: wanted.read) { [unowned pump] in pump.localEvent($0) }
            }
            reactor.set(1, events: wanted.write) { [unowned pump] in pump.localEvent($0) }
            if keepalive > 0 && Posix.now() >= nextKeepalive {
                client.sendIgnore()
                nextKeepalive = Posix.now() + Int64(keepalive)
            }
        }
        diagnostics.debug("channel ended: \(pump.endReason); \(pump.bytesToServer) bytes sent, \(pump.bytesFromServer) received")
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

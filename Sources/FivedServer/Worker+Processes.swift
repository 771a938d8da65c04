import FivedCore
import FivedSystem
#if canImport(Glibc)
import Glibc
#endif

/// Where a process's exit goes before and after the worker knows the process.
private final class ProcessSlot: @unchecked Sendable {
    var process: ServiceProcess?
    var status: Int32?
}

extension Worker {
    /// Starts exec service `service` through the spawner, which runs it as its
    /// configured user: the worker makes the descriptors (a socketpair and a
    /// stderr pipe, or, with `terminal` for a `pty = true` service, a
    /// pseudo-terminal with the client's modes and size), hands the child's ends
    /// over, and the channel waits for the spawner's answer like a connect,
    /// bounded by `timeoutMilliseconds`.
    func startProcess(
        _ service: ServiceConfig, environment: [String], source: String, terminal: TerminalRequest?, timeoutMilliseconds: Int64
    ) throws(BackendFailure) -> PendingBackend {
        let ours: Descriptor
        let oursErrors: Descriptor?
        let theirs: [Descriptor]
        // The spawner sets PATH itself (it takes none from the daemon).
        var environment = environment.filter { !$0.hasPrefix("PATH=") }
        let onTerminal = terminal != nil && service.pty
        do {
            if let terminal, service.pty {
                let pty = try PseudoTerminal()
                try pty.updateAttributes { terminal.modes.apply(to: &$0) }
                let size = terminal.clampedSize
                try pty.setWindowSize(rows: size.rows, columns: size.columns, widthPixels: size.widthPixels, heightPixels: size.heightPixels)
                guard let slave = pty.takeSlave() else { throw SystemError("open", errno: EBADF, subject: pty.slavePath) }
                ours = pty.master
                oursErrors = nil
                theirs = [slave]
                if !terminal.term.isEmpty { environment.append("TERM=\(terminal.term)") }
            } else {
                let pair = try Syscall.socketPair(nonBlocking: false)
                let errors = try Syscall.pipe(nonBlocking: false)
                try Syscall.setNonBlocking(pair.0.rawValue)
                try Syscall.setNonBlocking(errors.read.rawValue)
                ours = pair.0
                oursErrors = errors.read
                theirs = [pair.1, errors.write]
            }
        } catch {
            throw BackendFailure(.spawn, "exec \(service.name): \(error)")
        }
        defer { theirs.forEach { $0.close() } }
        let pending = PendingProcess(
            service: service.name, stream: ours, errors: oursErrors, isTerminal: onTerminal,
            deadline: MonotonicClock.now + timeoutMilliseconds, worker: self)
        let slot = ProcessSlot()
        spawner.spawn(
            service: service.name, environment: environment, source: source, terminal: onTerminal, fds: theirs.map(\.rawValue),
            started: { [unowned self] result in
                post(.perform { worker in worker.processStarted(pending, slot, result) })
            },
            exited: { [unowned self] status in
                post(
                    .perform { _ in
                        if let process = slot.process { process.exited(status) } else { slot.status = status }
                    })
            })
        return .process(pending)
    }

    /// The spawner's answer to a `startProcess`.
    private func processStarted(_ pending: PendingProcess, _ slot: ProcessSlot, _ result: Result<SpawnedChild, BackendFailure>) {
        let process: ServiceProcess?
        if case .success(let child) = result {
            let started = ServiceProcess(child, spawner: spawner)
            slot.process = started
            if let status = slot.status { started.exited(status) }
            process = started
        } else {
            process = nil
        }
        guard !pending.settled else {
            // The channel went away or gave up waiting: the program is not wanted.
            process?.retire()
            return
        }
        pending.settled = true
        let waiter = awaitingProcesses.removeValue(forKey: ObjectIdentifier(pending))
        switch result {
        case .success:
            guard let waiter, let process else {
                process?.retire()
                pending.cancel()
                return
            }
            finishProcess(
                waiter,
                .success(
                    BackendConnection(
                        stream: pending.stream, errors: pending.errors, process: process, isTerminal: pending.isTerminal)))
        case .failure(let failure):
            pending.cancel()
            if let waiter { finishProcess(waiter, .failure(failure)) }
        }
    }
}

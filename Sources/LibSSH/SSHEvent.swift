import CLibSSH

/// A descriptor watched by an `SSHEvent`; `handler` runs with the poll revents.
public final class DescriptorWatch {
    public let fd: Int32
    let handler: (Int16) -> Void

    public init(fd: Int32, handler: @escaping (Int16) -> Void) {
        self.fd = fd
        self.handler = handler
    }
}

/// One `ssh_event`: a libssh poll context. fived gives each server session its
/// own (sessions sharing one can fail each other: docs/libssh.md); fived-connect
/// uses one for its session and local descriptors. Never add or remove anything from inside a
/// callback: libssh's dispatch loop keeps indexes into the poll array
/// (poll.c:723), so all changes happen between `poll` calls.
public final class SSHEvent {
    let event: ssh_event
    private var watches: [Int32: DescriptorWatch] = [:]

    public init() throws(LibSSHError) {
        guard let e = ssh_event_new() else {
            throw LibSSHError(.allocation, "could not allocate an SSH event")
        }
        event = e
    }

    deinit {
        ssh_event_free(event)
    }

    /// Adds a session's socket to the poll set.
    public func add(_ session: SSHSession) throws(LibSSHError) {
        guard ssh_event_add_session(event, session.session) == SSH_OK else {
            throw LibSSHError(.event, "could not add a session to the event loop: \(session.lastErrorText)")
        }
    }

    /// Removes a session's socket from the poll set.
    public func remove(_ session: SSHSession) {
        _ = ssh_event_remove_session(event, session.session)
    }

    /// Watches `watch.fd` for `events` (POLLIN/POLLOUT). Replaces an earlier watch of the same fd.
    public func watch(_ watch: DescriptorWatch, events: Int16) throws(LibSSHError) {
        if watches[watch.fd] != nil { unwatch(fd: watch.fd) }
        let rc = ssh_event_add_fd(
            event, watch.fd, events,
            { _, revents, userdata in
                guard let userdata else { return 0 }
                let w = Unmanaged<DescriptorWatch>.fromOpaque(userdata).takeUnretainedValue()
                w.handler(Int16(truncatingIfNeeded: revents))
                return 0
            }, Unmanaged.passUnretained(watch).toOpaque())
        guard rc == SSH_OK else {
            throw LibSSHError(.event, "could not watch descriptor \(watch.fd)")
        }
        watches[watch.fd] = watch
    }

    /// Stops watching `fd`.
    public func unwatch(fd: Int32) {
        guard watches.removeValue(forKey: fd) != nil else { return }
        _ = ssh_event_remove_fd(event, fd)
    }

    /// Polls once for up to `timeoutMilliseconds` (-1: forever) and runs callbacks.
    /// A session that hit EOF or an error makes libssh stop the pass early; that is
    /// not an error of the loop, so the return value only says whether anything ran.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32) -> Int32 {
        ssh_event_dopoll(event, timeoutMilliseconds)
    }
}

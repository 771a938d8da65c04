import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// The single-threaded event loop: one `SSHEvent` over the SSH session and the
/// local descriptors. Registrations change only between polls (libssh keeps
/// indexes into its poll array while dispatching), and a descriptor is always
/// unregistered before it is closed.
final class Reactor {
    let event: SSHEvent
    private var registered: [Int32: Int16] = [:]
    private var handlers: [Int32: (Int16) -> Void] = [:]

    init() throws(LibSSHError) {
        event = try SSHEvent()
    }

    /// Watches `fd` for `events` (0 stops watching); `handler` only records what happened.
    func set(_ fd: Int32, events: Int16, handler: @escaping (Int16) -> Void) {
        handlers[fd] = handler
        if registered[fd] == events { return }
        if registered[fd] != nil {
            event.unwatch(fd: fd)
            registered[fd] = nil
        }
        guard events != 0 else { return }
        let watch = DescriptorWatch(fd: fd) { [unowned self] revents in
            self.handlers[fd]?(revents)
        }
        if (try? event.watch(watch, events: events)) != nil {
            registered[fd] = events
        }
    }

    /// Stops watching `fd` and forgets its handler.
    func remove(_ fd: Int32) {
        handlers[fd] = nil
        if registered.removeValue(forKey: fd) != nil {
            event.unwatch(fd: fd)
        }
    }

    func add(_ client: SSHClient) throws(LibSSHError) {
        try event.add(client.session)
    }

    func remove(_ client: SSHClient) {
        event.remove(client.session)
    }

    func poll(timeoutMilliseconds: Int32) {
        event.poll(timeoutMilliseconds: timeoutMilliseconds)
    }
}

/// The messages between the daemon (unprivileged, network-facing) and the
/// spawner (privileged, small): the only way the daemon gets anything done that
/// needs privilege. Each message is one SOCK_SEQPACKET datagram of at most
/// `maximumMessageSize` bytes; descriptors travel beside it as SCM_RIGHTS, and
/// the message says how many it carries, so a datagram with any other number is
/// refused. Integers are big-endian; a string is a u16 length then UTF-8 without
/// NUL; every length and count has a bound, checked before anything is read.
///
/// The daemon names what it wants; the spawner decides what that means from its
/// own copy of the configuration: a service name (never a program path), a user
/// whose authorized_keys files to open (never a path), a key for the
/// authorized_keys_command. A compromised daemon can ask only for what the
/// configuration already allows (docs/security.md, "Who runs what").
public enum SpawnerProtocol {
    /// The largest datagram either side sends or accepts, in bytes.
    public static let maximumMessageSize = 65536
    /// The longest string field (an environment entry, a path, a reason), in bytes.
    public static let maximumStringLength = 4096
    /// The most environment entries in one spawn request.
    public static let maximumEnvironmentEntries = 64
    /// The most files in one `files` answer.
    public static let maximumFiles = 32
}

/// Daemon → spawner.
public enum SpawnerRequest: Sendable, Equatable {
    /// Start configured exec service `service` for a channel, as its configured
    /// user, with exactly `environment` (names checked by `SpawnerEnvironment`);
    /// `source` is the client address (for `per_source`). Descriptors: the
    /// channel's end for stdin/stdout, then (unless `terminal`) the stderr pipe's
    /// write end. With `terminal`, the first descriptor is a pseudo-terminal's
    /// slave, which becomes the child's controlling terminal and its stderr too.
    case spawn(id: UInt64, service: String, environment: [String], source: String, terminal: Bool)
    /// Send `signal` to the process group of the spawner's child that request
    /// `child` (a `spawn` or `runCommand`) started. Named by the request, never
    /// by pid: once the child is reaped its id names nothing, while its pid may
    /// already be another child's.
    case signal(child: UInt64, signal: Int32)
    /// The daemon is done with the child request `child` started: SIGHUP to its
    /// group now, SIGKILL after `SpawnerRequest.retireMilliseconds` if it still runs.
    case retire(child: UInt64)
    /// Open the authorized_keys files (or, with `principals`, the
    /// authorized_principals_file) that the configuration names for SSH user
    /// `user`, as that user when it is an account on the host.
    case openFiles(id: UInt64, user: String, principals: Bool)
    /// Run the configured authorized_keys_command for SSH user `user` and the
    /// presented key (`keyType`, `fingerprint`, `keyBase64` fill `%t %f %k`), as
    /// authorized_keys_command_user; answered with its stdout's read end.
    case runCommand(id: UInt64, user: String, keyType: String, fingerprint: String, keyBase64: String)
    /// Read the configuration again (after the daemon's SIGHUP).
    case reload(id: UInt64)

    /// How long a retired child has between SIGHUP and SIGKILL, in ms.
    public static let retireMilliseconds: Int64 = 2000

    /// How long the daemon waits for the answer to an `openFiles`, in ms; the
    /// login is refused after that, and the spawner skips a lookup that waited
    /// longer behind another of the same user's.
    public static let filesAnswerMilliseconds: Int64 = 5000

    /// The descriptors this request carries.
    public var descriptorCount: Int {
        switch self {
        case .spawn(_, _, _, _, let terminal): return terminal ? 1 : 2
        default: return 0
        }
    }
}

/// Spawner → daemon.
public enum SpawnerEvent: Sendable, Equatable {
    /// The service's program started (exec succeeded) as `pid`.
    case spawned(id: UInt64, pid: Int32)
    /// It did not; `reason` is for the log (a refusal by `instances`, a missing
    /// user, exec's errno...).
    case spawnFailed(id: UInt64, reason: String)
    /// The child that request `child` (a `spawn` or `runCommand`) started, as
    /// `pid`, ended; `status` is its wait(2) status.
    case exited(child: UInt64, pid: Int32, status: Int32)
    /// The files an `openFiles` request named, in configuration order; the
    /// descriptors are those of the entries with `opened` status, in order:
    /// each a sealed memfd holding the file's contents as the spawner read them
    /// (so the daemon never touches a user's file system), the file's own
    /// identity in the entry's `stamp`.
    case files(id: UInt64, entries: [FileEntry])
    /// The authorized_keys_command started as `pid`; the descriptor is its stdout.
    case commandStarted(id: UInt64, pid: Int32)
    case commandFailed(id: UInt64, reason: String)
    /// A reload finished (`reason` nil) or failed and kept the old configuration.
    case reloaded(id: UInt64, reason: String?)

    /// One file of a `files` answer.
    public struct FileEntry: Sendable, Equatable {
        public enum Status: UInt8, Sendable {
            /// Opened read-only; its descriptor follows.
            case opened = 1
            /// Does not exist (or, with a reason, its pattern names a home the user lacks).
            case missing = 2
            /// Not read: it or a directory above it could be changed by someone else (StrictModes).
            case unsafe = 3
            /// Not read for another reason (not a regular file, no permission, no home for `%h`).
            case unreadable = 4
        }
        public var path: String
        public var status: Status
        /// Why, for `unsafe` and `unreadable`; empty otherwise.
        public var reason: String
        /// The file's identity when it was read (`opened` entries only), for the
        /// daemon's cache of parsed files.
        public var stamp: FileStamp?

        public init(path: String, status: Status, reason: String = "", stamp: FileStamp? = nil) {
            self.path = path
            self.status = status
            self.reason = reason
            self.stamp = status == .opened ? stamp ?? FileStamp() : nil
        }
    }

    /// The descriptors this event carries.
    public var descriptorCount: Int {
        switch self {
        case .files(_, let entries): return entries.filter { $0.status == .opened }.count
        case .commandStarted: return 1
        default: return 0
        }
    }
}

/// Why a datagram was refused.
public struct SpawnerProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Encoding

extension SpawnerRequest {
    /// The datagram for this request.
    public func encoded() -> [UInt8] {
        var w = SpawnerWriter()
        switch self {
        case .spawn(let id, let service, let environment, let source, let terminal):
            w.u8(1); w.u64(id); w.string(service); w.u16(UInt16(environment.count))
            environment.forEach { w.string($0) }
            w.string(source); w.u8(terminal ? 1 : 0)
        case .signal(let child, let signal):
            w.u8(2); w.u64(child); w.i32(signal)
        case .retire(let child):
            w.u8(3); w.u64(child)
        case .openFiles(let id, let user, let principals):
            w.u8(4); w.u64(id); w.string(user); w.u8(principals ? 1 : 0)
        case .runCommand(let id, let user, let keyType, let fingerprint, let keyBase64):
            w.u8(5); w.u64(id); w.string(user); w.string(keyType); w.string(fingerprint); w.string(keyBase64)
        case .reload(let id):
            w.u8(6); w.u64(id)
        }
        return w.bytes
    }

    /// For a datagram that does not parse: the kind and id of the request it
    /// starts like, when that kind is answered (spawn, open files, run command,
    /// reload), so that a refusal can still be sent and no waiter waits in vain.
    public static func answerable(_ bytes: [UInt8]) -> (kind: UInt8, id: UInt64)? {
        guard bytes.count >= 9, [1, 4, 5, 6].contains(bytes[0]) else { return nil }
        let id = bytes[1...8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (bytes[0], id)
    }

    /// Parses one datagram that came with `descriptors` descriptors. Throws on
    /// anything malformed, oversized, trailing, or with the wrong descriptor count.
    public init(decoding bytes: [UInt8], descriptors: Int) throws(SpawnerProtocolError) {
        guard bytes.count <= SpawnerProtocol.maximumMessageSize else { throw SpawnerProtocolError("request too large") }
        var r = SpawnerReader(bytes)
        switch try r.u8() {
        case 1:
            let id = try r.u64()
            let service = try r.string()
            let count = Int(try r.u16())
            guard count <= SpawnerProtocol.maximumEnvironmentEntries else { throw SpawnerProtocolError("too many environment entries") }
            var environment: [String] = []
            for _ in 0..<count { environment.append(try r.string()) }
            let source = try r.string()
            let terminal = try r.u8()
            guard terminal <= 1 else { throw SpawnerProtocolError("bad terminal flag") }
            self = .spawn(id: id, service: service, environment: environment, source: source, terminal: terminal == 1)
        case 2:
            self = .signal(child: try r.u64(), signal: try r.i32())
        case 3:
            self = .retire(child: try r.u64())
        case 4:
            let id = try r.u64()
            let user = try r.string()
            let principals = try r.u8()
            guard principals <= 1 else { throw SpawnerProtocolError("bad principals flag") }
            self = .openFiles(id: id, user: user, principals: principals == 1)
        case 5:
            self = .runCommand(id: try r.u64(), user: try r.string(), keyType: try r.string(), fingerprint: try r.string(), keyBase64: try r.string())
        case 6:
            self = .reload(id: try r.u64())
        case let kind:
            throw SpawnerProtocolError("unknown request kind \(kind)")
        }
        try r.end()
        guard descriptors == descriptorCount else {
            throw SpawnerProtocolError("request carries \(descriptors) descriptors, expected \(descriptorCount)")
        }
    }
}

extension SpawnerEvent {
    /// The datagram for this event.
    public func encoded() -> [UInt8] {
        var w = SpawnerWriter()
        switch self {
        case .spawned(let id, let pid):
            w.u8(1); w.u64(id); w.i32(pid)
        case .spawnFailed(let id, let reason):
            w.u8(2); w.u64(id); w.string(reason)
        case .exited(let child, let pid, let status):
            w.u8(3); w.u64(child); w.i32(pid); w.i32(status)
        case .files(let id, let entries):
            w.u8(4); w.u64(id); w.u16(UInt16(entries.count))
            for entry in entries {
                w.string(entry.path); w.u8(entry.status.rawValue); w.string(entry.reason)
                if let stamp = entry.stamp {
                    w.u64(stamp.device); w.u64(stamp.inode); w.u64(UInt64(bitPattern: stamp.size))
                    w.u64(UInt64(bitPattern: stamp.modifiedSeconds)); w.u64(UInt64(bitPattern: stamp.modifiedNanoseconds))
                }
            }
        case .commandStarted(let id, let pid):
            w.u8(5); w.u64(id); w.i32(pid)
        case .commandFailed(let id, let reason):
            w.u8(6); w.u64(id); w.string(reason)
        case .reloaded(let id, let reason):
            w.u8(7); w.u64(id); w.u8(reason == nil ? 0 : 1); w.string(reason ?? "")
        }
        return w.bytes
    }

    /// Parses one datagram that came with `descriptors` descriptors.
    public init(decoding bytes: [UInt8], descriptors: Int) throws(SpawnerProtocolError) {
        guard bytes.count <= SpawnerProtocol.maximumMessageSize else { throw SpawnerProtocolError("event too large") }
        var r = SpawnerReader(bytes)
        switch try r.u8() {
        case 1: self = .spawned(id: try r.u64(), pid: try r.i32())
        case 2: self = .spawnFailed(id: try r.u64(), reason: try r.string())
        case 3: self = .exited(child: try r.u64(), pid: try r.i32(), status: try r.i32())
        case 4:
            let id = try r.u64()
            let count = Int(try r.u16())
            guard count <= SpawnerProtocol.maximumFiles else { throw SpawnerProtocolError("too many files") }
            var entries: [FileEntry] = []
            for _ in 0..<count {
                let path = try r.string()
                guard let status = FileEntry.Status(rawValue: try r.u8()) else { throw SpawnerProtocolError("bad file status") }
                let reason = try r.string()
                var stamp: FileStamp?
                if status == .opened {
                    stamp = FileStamp(
                        device: try r.u64(), inode: try r.u64(), size: Int64(bitPattern: try r.u64()),
                        modifiedSeconds: Int64(bitPattern: try r.u64()), modifiedNanoseconds: Int64(bitPattern: try r.u64()))
                }
                entries.append(FileEntry(path: path, status: status, reason: reason, stamp: stamp))
            }
            self = .files(id: id, entries: entries)
        case 5: self = .commandStarted(id: try r.u64(), pid: try r.i32())
        case 6: self = .commandFailed(id: try r.u64(), reason: try r.string())
        case 7:
            let id = try r.u64()
            let failed = try r.u8()
            guard failed <= 1 else { throw SpawnerProtocolError("bad reload flag") }
            let reason = try r.string()
            // A reload that took has no reason: anything else is not what the spawner sends.
            guard failed == 1 || reason.isEmpty else { throw SpawnerProtocolError("a reason for a reload that took") }
            self = .reloaded(id: id, reason: failed == 1 ? reason : nil)
        case let kind:
            throw SpawnerProtocolError("unknown event kind \(kind)")
        }
        try r.end()
        guard descriptors == descriptorCount else {
            throw SpawnerProtocolError("event carries \(descriptors) descriptors, expected \(descriptorCount)")
        }
    }
}

private struct SpawnerWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xFF)] }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    mutating func u32(_ v: UInt32) { bytes += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    mutating func u64(_ v: UInt64) { u32(UInt32(v >> 32)); u32(UInt32(v & 0xFFFF_FFFF)) }
    /// Strings longer than the bound are cut at a character boundary, NULs
    /// dropped: the writer's side never sends what the reader refuses.
    mutating func string(_ s: String) {
        var utf8: [UInt8] = []
        for scalar in s.unicodeScalars where scalar != "\0" {
            let encoded = Array(String(scalar).utf8)
            if utf8.count + encoded.count > SpawnerProtocol.maximumStringLength { break }
            utf8 += encoded
        }
        u16(UInt16(utf8.count))
        bytes += utf8
    }
}

private struct SpawnerReader {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func take(_ n: Int) throws(SpawnerProtocolError) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.count - index >= n else { throw SpawnerProtocolError("message ends early") }
        defer { index += n }
        return bytes[index..<index + n]
    }
    mutating func u8() throws(SpawnerProtocolError) -> UInt8 { try take(1).first! }
    mutating func u16() throws(SpawnerProtocolError) -> UInt16 {
        let b = try take(2)
        return UInt16(b[b.startIndex]) << 8 | UInt16(b[b.startIndex + 1])
    }
    mutating func u32() throws(SpawnerProtocolError) -> UInt32 {
        try take(4).reduce(0) { $0 << 8 | UInt32($1) }
    }
    mutating func i32() throws(SpawnerProtocolError) -> Int32 { Int32(bitPattern: try u32()) }
    mutating func u64() throws(SpawnerProtocolError) -> UInt64 { UInt64(try u32()) << 32 | UInt64(try u32()) }
    mutating func string() throws(SpawnerProtocolError) -> String {
        let n = Int(try u16())
        guard n <= SpawnerProtocol.maximumStringLength else { throw SpawnerProtocolError("string too long") }
        let raw = try take(n)
        guard !raw.contains(0), let s = String(validating: raw, as: UTF8.self) else { throw SpawnerProtocolError("string is not UTF-8 without NUL") }
        return s
    }
    func end() throws(SpawnerProtocolError) {
        guard index == bytes.count else { throw SpawnerProtocolError("trailing bytes") }
    }
}

/// The environment a spawn request may carry: the caller's identity as SPEC.md
/// lists it for exec services (`FIVED_*`, the UCSPI names) and, for a program
/// on a terminal only, `TERM`; each once, printable, no `=` in the name. The
/// spawner refuses a request with any other (a daemon choosing `PATH` or
/// `LD_PRELOAD` would choose the program), and adds `PATH`, `HOME`, `USER`,
/// `LOGNAME` and `SHELL` itself.
public enum SpawnerEnvironment {
    /// The names the daemon may pass.
    public static let allowedNames: Set<String> = [
        "FIVED_SERVICE", "FIVED_USER", "FIVED_KEY_FINGERPRINT", "FIVED_KEY_COMMENT", "FIVED_CLIENT_ADDR",
        "FIVED_CLIENT_PORT", "FIVED_CERT_KEY_ID", "FIVED_CERT_SERIAL", "FIVED_CERT_PRINCIPAL",
        "FIVED_CERT_CA_FINGERPRINT", "PROTO", "TCPREMOTEIP", "TCPREMOTEPORT", "TCPLOCALIP", "TCPLOCALPORT", "TERM",
    ]

    /// Checks `entries` (`NAME=value` strings) for a program started on a
    /// terminal or not: nil when acceptable, else why not.
    public static func problem(in entries: [String], terminal: Bool) -> String? {
        var seen: Set<String> = []
        for entry in entries {
            guard let equals = entry.firstIndex(of: "=") else { return "environment entry without '='" }
            let name = String(entry[..<equals])
            guard allowedNames.contains(name) else { return "environment name \(ServiceName.printable(name)) is not one fived passes" }
            guard name != "TERM" || terminal else { return "TERM for a program without a terminal" }
            guard seen.insert(name).inserted else { return "environment name \(name) given twice" }
            guard !entry.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) else {
                return "environment entry \(name) has a control character"
            }
        }
        return nil
    }
}

/// A file's identity as stat(2) gives it: device, inode, size (bytes) and
/// modification time. A cache keyed by a path holds while this stays the same.
public struct FileStamp: Sendable, Equatable {
    public var device: UInt64 = 0
    public var inode: UInt64 = 0
    public var size: Int64 = 0
    public var modifiedSeconds: Int64 = 0
    public var modifiedNanoseconds: Int64 = 0

    public init(device: UInt64 = 0, inode: UInt64 = 0, size: Int64 = 0, modifiedSeconds: Int64 = 0, modifiedNanoseconds: Int64 = 0) {
        self.device = device
        self.inode = inode
        self.size = size
        self.modifiedSeconds = modifiedSeconds
        self.modifiedNanoseconds = modifiedNanoseconds
    }
}

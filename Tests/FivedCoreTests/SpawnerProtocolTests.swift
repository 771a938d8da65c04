import FivedCore
import Testing

/// The daemon-to-spawner request format (SpawnerProtocol.swift): what the
/// privileged process accepts is exactly what the daemon sends, and nothing
/// malformed, oversized or carrying the wrong descriptors gets through.
@Suite("Spawner protocol")
struct SpawnerProtocolTests {
    static let requests: [SpawnerRequest] = [
        .spawn(id: 7, service: "git", environment: ["FIVED_SERVICE=git", "FIVED_USER=alice"], source: "192.0.2.1", terminal: false),
        .spawn(id: UInt64.max, service: "repl", environment: ["TERM=xterm"], source: "2001:db8::1", terminal: true),
        .signal(child: 4242, signal: 15),
        .retire(child: UInt64.max),
        .openFiles(id: 3, user: "alice", principals: true),
        .runCommand(id: 4, user: "bob", keyType: "ssh-ed25519", fingerprint: "SHA256:abc", keyBase64: "AAAA"),
        .reload(id: 5),
    ]

    @Test("every request survives encoding and decoding with its descriptor count")
    func roundTrip() throws {
        for request in Self.requests {
            let decoded = try SpawnerRequest(decoding: request.encoded(), descriptors: request.descriptorCount)
            #expect(decoded == request)
        }
    }

    @Test("a request with the wrong number of descriptors is refused")
    func descriptorCount() {
        for request in Self.requests {
            #expect(throws: SpawnerProtocolError.self) {
                try SpawnerRequest(decoding: request.encoded(), descriptors: request.descriptorCount + 1)
            }
        }
    }

    @Test("every truncation, a trailing byte, an unknown kind and bad flags are refused")
    func malformed() {
        for request in Self.requests {
            let bytes = request.encoded()
            for cut in 0..<bytes.count {
                #expect(throws: SpawnerProtocolError.self) {
                    try SpawnerRequest(decoding: Array(bytes[..<cut]), descriptors: request.descriptorCount)
                }
            }
            #expect(throws: SpawnerProtocolError.self) {
                try SpawnerRequest(decoding: bytes + [0], descriptors: request.descriptorCount)
            }
        }
        #expect(throws: SpawnerProtocolError.self) { try SpawnerRequest(decoding: [0x7F], descriptors: 0) }
        var badFlag = SpawnerRequest.openFiles(id: 1, user: "a", principals: false).encoded()
        badFlag[badFlag.count - 1] = 2
        #expect(throws: SpawnerProtocolError.self) { try SpawnerRequest(decoding: badFlag, descriptors: 0) }
    }

    @Test("a string with NUL or invalid UTF-8, and a message over the size bound, are refused")
    func strings() {
        // kind 6 (reload) is fixed-size; kind 4 carries one string: user.
        let withNUL: [UInt8] = [4] + [UInt8](repeating: 0, count: 8) + [0, 3, 0x61, 0x00, 0x62, 0]
        #expect(throws: SpawnerProtocolError.self) { try SpawnerRequest(decoding: withNUL, descriptors: 0) }
        let badUTF8: [UInt8] = [4] + [UInt8](repeating: 0, count: 8) + [0, 2, 0xC3, 0x28, 0]
        #expect(throws: SpawnerProtocolError.self) { try SpawnerRequest(decoding: badUTF8, descriptors: 0) }
        let huge = [UInt8](repeating: 1, count: SpawnerProtocol.maximumMessageSize + 1)
        #expect(throws: SpawnerProtocolError.self) { try SpawnerRequest(decoding: huge, descriptors: 2) }
    }

    @Test("events the spawner sends decode as sent")
    func events() throws {
        let events: [SpawnerEvent] = [
            .spawned(id: 1, pid: 100), .spawnFailed(id: 2, reason: "instances (1) reached"), .exited(child: 1, pid: 100, status: 256),
            .commandStarted(id: 3, pid: 5), .commandFailed(id: 4, reason: "no user 'x'"), .reloaded(id: 5, reason: nil),
            .reloaded(id: 6, reason: "services.git.user: no user 'gitx' on this host"),
            .files(
                id: 7,
                entries: [
                    .init(
                        path: "/home/alice/.ssh/authorized_keys", status: .opened,
                        stamp: FileStamp(device: 2049, inode: 1 << 40, size: 4 << 20, modifiedSeconds: -1, modifiedNanoseconds: 999_999_999)),
                    .init(path: "/etc/fived/keys/alice", status: .missing),
                    .init(path: "/home/alice/.ssh/authorized_keys2", status: .unsafe, reason: "file is writable by group (mode 664)"),
                ]),
        ]
        for event in events {
            #expect(try SpawnerEvent(decoding: event.encoded(), descriptors: event.descriptorCount) == event)
        }
        // Found by fuzz/spawner.swift: a reload that took, with a reason, decoded
        // as one without, so it did not encode back to its bytes.
        #expect(throws: SpawnerProtocolError.self) {
            try SpawnerEvent(decoding: [7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 1, 0x41], descriptors: 0)
        }
    }

    @Test("only the caller's identity passes, each name once, without control characters; TERM only on a terminal; never PATH")
    func environment() {
        #expect(SpawnerEnvironment.problem(in: ["FIVED_USER=a", "TCPREMOTEIP=192.0.2.1"], terminal: false) == nil)
        #expect(SpawnerEnvironment.problem(in: ["FIVED_USER=a", "TERM=xterm"], terminal: true) == nil)
        #expect(SpawnerEnvironment.problem(in: ["TERM=xterm"], terminal: false) != nil)
        #expect(SpawnerEnvironment.problem(in: ["PATH=/tmp/evil"], terminal: false) != nil)
        #expect(SpawnerEnvironment.problem(in: ["LD_PRELOAD=/tmp/x.so"], terminal: false) != nil)
        #expect(SpawnerEnvironment.problem(in: ["FIVED_USER=a", "FIVED_USER=b"], terminal: false) != nil)
        #expect(SpawnerEnvironment.problem(in: ["FIVED_USER=a\nb"], terminal: false) != nil)
        #expect(SpawnerEnvironment.problem(in: ["NOEQUALS"], terminal: false) != nil)
        #expect(SpawnerEnvironment.problem(in: ["HOME=/root"], terminal: false) != nil)
    }
}

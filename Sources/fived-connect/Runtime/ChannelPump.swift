import LibSSH
#if canImport(Glibc)
import Glibc
#endif

/// One SSH channel joined to local descriptors (a socket, or stdin and stdout):
/// the byte pump. It reads only while the other side can take it, and turns EOF
/// into a half-close each way. libssh callbacks and descriptor events only
/// record what happened; `step()` runs between polls, where libssh may be
/// re-entered. Memory stays bounded: one chunk each way plus libssh's window.
final class ChannelPump: SSHChannelDelegate {
    /// Largest single read from either side.
    static let chunkSize = 64 * 1024
    /// Bytes moved toward the server per step, so one busy channel cannot starve the rest.
    static let stepBudget = 512 * 1024

    enum Phase: Equatable {
        /// The channel open request is in flight (`-L`, stdio).
        case opening
        /// The channel is open; the local connection is still being made (`-R`).
        case connecting
        case open
        case finished
    }

    let channel: SSHChannel
    let service: String
    /// Where local bytes come from; -1 for none (EOF is sent at once).
    let readFD: Int32
    /// Where channel bytes go.
    let writeFD: Int32
    private let readIsSocket: Bool
    private let writeIsSocket: Bool
    /// Whether `teardown` closes the descriptors (sockets yes, stdio no).
    let ownsDescriptors: Bool
    let originator: (host: String, port: UInt16)
    private(set) var phase: Phase
    /// The server's reason when it refused the open.
    private(set) var refusal: String?
    private(set) var endReason = ""
    let createdAt = Posix.now()

    // Channel -> local.
    private var sshHasBuffered = false
    private var out: [UInt8] = []
    private var outOffset = 0
    private var localWritable = true
    private(set) var localWriteClosed = false
    private var remoteEOF = false
    private(set) var remoteClosed = false

    // Local -> channel.
    private var localReadable = false
    private var localEOF = false
    private var input: [UInt8] = []
    private var inputOffset = 0
    private(set) var eofSent = false

    private(set) var bytesToServer = 0
    private(set) var bytesFromServer = 0

    init(channel: SSHChannel, service: String, readFD: Int32, writeFD: Int32, ownsDescriptors: Bool,
         originator: (host: String, port: UInt16), phase: Phase) {
        self.channel = channel
        self.service = service
        self.readFD = readFD
        self.writeFD = writeFD
        self.readIsSocket = readFD >= 0 && Posix.isSocket(readFD)
        self.writeIsSocket = Posix.isSocket(writeFD)
        self.ownsDescriptors = ownsDescriptors
        self.originator = originator
        self.phase = phase
        if readFD < 0 { localEOF = true }
        if phase == .connecting { localWritable = false }
        channel.install(delegate: self)
    }

    // MARK: Opening

    /// Advances the channel open; true when it is settled (open or refused).
    func advanceOpen() -> Bool {
        guard phase == .opening else { return true }
        do {
            guard try channel.openForward(host: service, port: 1, originatorHost: originator.host,
                                          originatorPort: Int32(originator.port)) else { return false }
            phase = .open
            return true
        } catch {
            refusal = Self.reason(from: error.message)
            finish(reason: "refused: \(refusal!)")
            return true
        }
    }

    /// libssh reports "Channel opening failure: channel 3 error (1) TEXT": keep TEXT and the code's meaning.
    static func reason(from text: String) -> String {
        guard let range = text.range(of: "error (") else { return text }
        let rest = text[range.upperBound...]
        guard let close = rest.firstIndex(of: ")") else { return text }
        let code = rest[..<close]
        let message = rest[rest.index(after: close)...].trimmingSpaces()
        let meaning: String
        switch code {
        case "1": meaning = "administratively prohibited"
        case "2": meaning = "connect failed"
        case "3": meaning = "unknown channel type"
        case "4": meaning = "resource shortage"
        default: meaning = "code \(code)"
        }
        return message.isEmpty ? meaning : "\(message) (\(meaning))"
    }

    // MARK: SSHChannelDelegate (inside libssh's dispatch: record, write directly at most)

    func channel(_ channel: SSHChannel, received data: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        if isStderr || phase == .finished || localWriteClosed { return data.count }
        if phase != .open || outOffset < out.count || !localWritable {
            sshHasBuffered = true
            return 0
        }
        switch Posix.write(writeFD, data, isSocket: writeIsSocket) {
        case .count(let n):
            bytesFromServer += n
            if n < data.count {
                localWritable = false
                sshHasBuffered = true
            } else {
                sshHasBuffered = false
            }
            return n
        case .wouldBlock:
            localWritable = false
            sshHasBuffered = true
            return 0
        case .failed(let e):
            localWriteFailed(e)
            return data.count
        }
    }

    func channelReceivedEOF(_ channel: SSHChannel) { remoteEOF = true }
    func channelReceivedClose(_ channel: SSHChannel) { remoteClosed = true }
    func channel(_ channel: SSHChannel, exec command: String) -> Bool { false }
    func channel(_ channel: SSHChannel, subsystem name: String) -> Bool { false }
    func channelShell(_ channel: SSHChannel) -> Bool { false }

    /// A poll event on one of the local descriptors.
    func localEvent(_ revents: Int16) {
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { localReadable = true }
        if revents & Int16(POLLOUT | POLLHUP | POLLERR) != 0 { localWritable = true }
    }

    // MARK: The pump (top level only)

    /// Moves what can be moved and sends EOF/close when due. Returns true when
    /// it stopped on its budget with more to do.
    func step() -> Bool {
        if phase == .connecting { finishConnect() }
        guard phase == .open else { return false }
        var again = toLocal()
        if phase == .finished { return false }
        again = toServer() || again
        if phase == .finished { return false }
        if remoteClosed && outOffset >= out.count && (!sshHasBuffered || localWriteClosed) {
            finish(reason: eofSent ? "closed" : "closed by the server")
            return false
        }
        if eofSent && localWriteClosed {
            finish(reason: "closed")
            return false
        }
        if !channel.isOpen && !remoteClosed {
            finish(reason: "channel lost")
            return false
        }
        return again
    }

    private func finishConnect() {
        guard localWritable || localReadable else { return }
        let e = Sockets.connectResult(writeFD)
        if e != 0 {
            finish(reason: "connect to the local target failed: \(String(cString: strerror(e)))")
            return
        }
        phase = .open
        localWritable = true
        localReadable = true
    }

    private func toLocal() -> Bool {
        guard !localWriteClosed else { return false }
        guard flushOut() else { return false }
        var rounds = 0
        while sshHasBuffered && localWritable && phase == .open {
            if rounds == 8 { return true }
            rounds += 1
            var got: Int? = 0
            var failed = false
            out = [UInt8](unsafeUninitializedCapacity: Self.chunkSize) { buf, count in
                do {
                    got = try channel.readBuffered(into: UnsafeMutableRawBufferPointer(buf))
                } catch {
                    failed = true
                }
                count = failed ? 0 : (got ?? 0)
            }
            outOffset = 0
            if failed || got == nil || got == 0 {
                sshHasBuffered = false
                break
            }
            guard flushOut() else { return false }
        }
        if remoteEOF && !sshHasBuffered && outOffset >= out.count && channel.isEOF {
            closeLocalWrite()
        }
        return false
    }

    /// Writes `out` to the local side; true when it is empty.
    private func flushOut() -> Bool {
        while outOffset < out.count {
            let result = out.withUnsafeBytes { buf in
                Posix.write(writeFD, UnsafeRawBufferPointer(rebasing: buf[outOffset...]), isSocket: writeIsSocket)
            }
            switch result {
            case .count(let n):
                outOffset += n
                bytesFromServer += n
            case .wouldBlock:
                localWritable = false
                return false
            case .failed(let e):
                localWriteFailed(e)
                return false
            }
        }
        out.removeAll(keepingCapacity: true)
        outOffset = 0
        return true
    }

    private func toServer() -> Bool {
        guard !eofSent else { return false }
        guard flushInput() else { return false }
        var budget = Self.stepBudget
        while localReadable && !localEOF && budget > 0 {
            let window = channel.windowSize
            if window <= 0 || !channel.session.flushOutput() { break }
            let want = min(window, Self.chunkSize, budget)
            var result = Posix.IO.count(0)
            input = [UInt8](unsafeUninitializedCapacity: want) { buf, count in
                result = Posix.read(readFD, into: UnsafeMutableRawBufferPointer(buf))
                if case .count(let n) = result { count = n } else { count = 0 }
            }
            inputOffset = 0
            switch result {
            case .count(0):
                localEOF = true
            case .count(let n):
                budget -= n
                if !flushInput() { return false }
            case .wouldBlock:
                localReadable = false
            case .failed:
                localEOF = true
                endReason = "local read error"
            }
        }
        if localEOF && inputOffset >= input.count && !eofSent {
            channel.sendEOF()
            eofSent = true
        }
        return localReadable && !localEOF && budget <= 0
    }

    /// Writes `input` to the channel within its window; true when it is empty.
    private func flushInput() -> Bool {
        while inputOffset < input.count {
            let window = channel.windowSize
            if window <= 0 { return false }
            let count = min(input.count - inputOffset, window)
            let written: Int
            do {
                written = try input.withUnsafeBytes { buf in
                    try channel.write(UnsafeRawBufferPointer(rebasing: buf[inputOffset..<(inputOffset + count)]))
                }
            } catch {
                finish(reason: "ssh write error")
                return false
            }
            inputOffset += written
            bytesToServer += written
            if written < count { return false }
        }
        input.removeAll(keepingCapacity: true)
        inputOffset = 0
        return true
    }

    /// The channel's EOF, delivered: half-close toward the local side.
    private func closeLocalWrite() {
        guard !localWriteClosed else { return }
        localWriteClosed = true
        if writeIsSocket {
            _ = shutdown(writeFD, Int32(SHUT_WR))
        } else if !ownsDescriptors {
            // stdout: point it at /dev/null so the reader sees EOF while the number stays valid.
            let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
            if null >= 0 {
                _ = dup2(null, writeFD)
                Posix.close(null)
            }
        }
    }

    private func localWriteFailed(_ e: Int32) {
        localWriteClosed = true
        sshHasBuffered = false
        out.removeAll()
        outOffset = 0
        finish(reason: "local write failed: \(String(cString: strerror(e)))")
    }

    /// Closes the channel (once) and records why.
    func finish(reason: String) {
        guard phase != .finished else { return }
        phase = .finished
        if endReason.isEmpty { endReason = reason }
        if channel.isOpen { channel.close() }
    }

    // MARK: What the loop registers

    /// Poll events wanted on `readFD` and on `writeFD` now.
    var wantedEvents: (read: Int16, write: Int16) {
        guard phase != .finished, phase != .opening else { return (0, 0) }
        if phase == .connecting { return (0, Int16(POLLOUT)) }
        var r: Int16 = 0
        var w: Int16 = 0
        if readFD >= 0 && !localEOF && !eofSent && !localReadable && inputOffset >= input.count
            && channel.windowSize > 0 && channel.session.flushOutput() {
            r = Int16(POLLIN)
        }
        if !localWriteClosed && !localWritable && (outOffset < out.count || sshHasBuffered) {
            w = Int16(POLLOUT)
        }
        return (r, w)
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

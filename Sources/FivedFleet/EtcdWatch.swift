import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One etcd watch on a key prefix through the JSON gateway (`POST /v3/watch`):
/// a long-lived response of newline-separated JSON messages, read as it
/// arrives. `onEvents` gets each batch of changes; `onEnd` is called once, when
/// the stream ends for any reason (etcd gone, canceled, compacted, stopped).
final class EtcdWatch: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    /// One change to a key.
    struct Event: Sendable {
        var key: String
        var value: [UInt8]
        var deleted: Bool
    }

    private struct Message: Decodable {
        struct Result: Decodable {
            struct WatchEvent: Decodable {
                var type: String?
                var kv: EtcdClient.KeyValue?
            }
            var created: Bool?
            var canceled: Bool?
            var cancel_reason: String?
            var compact_revision: String?
            var events: [WatchEvent]?
        }
        var result: Result?
        var error: ErrorBody?
        struct ErrorBody: Decodable { var message: String? }
    }

    private struct CreateRequest: Encodable {
        struct Body: Encodable {
            var key: String
            var range_end: String
            var start_revision: String
            var progress_notify: Bool
        }
        var create_request: Body
    }

    private let lock = NSLock()
    private var buffer: [UInt8] = []
    private var ended = false
    private var session: URLSession?
    private var task: URLSessionDataTask?
    private let onEvents: @Sendable ([Event]) -> Void
    private let onEnd: @Sendable (String) -> Void

    /// Starts watching every key under `prefix` from `revision` on, at `endpoint`.
    init(
        endpoint: URL, prefix: String, fromRevision revision: Int64,
        onEvents: @escaping @Sendable ([Event]) -> Void, onEnd: @escaping @Sendable (String) -> Void
    ) {
        self.onEvents = onEvents
        self.onEnd = onEnd
        super.init()
        let body = CreateRequest(
            create_request: .init(
                key: EtcdClient.b64(prefix), range_end: EtcdClient.rangeEnd(prefix), start_revision: String(revision), progress_notify: true))
        var request = URLRequest(url: endpoint.appendingPathComponent("v3/watch"))
        request.httpMethod = "POST"
        request.httpBody = try? JSONEncoder().encode(body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        // The stream is quiet while nothing changes: only a dead connection ends it.
        request.timeoutInterval = 7 * 24 * 3600
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 7 * 24 * 3600
        configuration.timeoutIntervalForResource = 365 * 24 * 3600
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
        self.session = session
        let task = session.dataTask(with: request)
        self.task = task
        task.resume()
    }

    /// Ends the watch (`onEnd` follows, once).
    func cancel() {
        task?.cancel()
    }

    /// Ends the watch without telling `onEnd`: a newer watch replaces it.
    func retire() {
        lock.withLock { ended = true }
        task?.cancel()
        session?.finishTasksAndInvalidate()
    }

    private func end(_ why: String) {
        let first = lock.withLock { () -> Bool in
            defer { ended = true }
            return !ended
        }
        guard first else { return }
        task?.cancel()
        session?.finishTasksAndInvalidate()
        onEnd(why)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        var lines: [[UInt8]] = []
        lock.withLock {
            buffer += data
            while let newline = buffer.firstIndex(of: 0x0A) {
                lines.append(Array(buffer[..<newline]))
                buffer.removeSubrange(...newline)
            }
            if buffer.count > 4 << 20 { buffer.removeAll() }  // never a message this long: drop, the next resync repairs
        }
        for line in lines where !line.isEmpty {
            guard let message = try? JSONDecoder().decode(Message.self, from: Data(line)) else {
                end("etcd watch: unreadable message")
                return
            }
            if let error = message.error {
                end("etcd watch: \(error.message ?? "error")")
                return
            }
            guard let result = message.result else { continue }
            if result.canceled == true {
                end("etcd watch canceled: \(result.cancel_reason ?? "compacted at \(result.compact_revision ?? "?")")")
                return
            }
            let events = (result.events ?? []).compactMap { event -> Event? in
                guard let kv = event.kv else { return nil }
                return Event(
                    key: String(decoding: EtcdClient.unb64(kv.key), as: UTF8.self), value: EtcdClient.unb64(kv.value),
                    deleted: event.type == "DELETE")
            }
            if !events.isEmpty { onEvents(events) }
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        end(error.map { "etcd watch ended: \(EtcdClient.shortText($0))" } ?? "etcd watch ended: etcd closed the stream")
    }
}

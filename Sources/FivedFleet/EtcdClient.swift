import FivedCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Why an etcd call failed: unreachable (every endpoint), or an answer that
/// etcd gave but fived cannot use. The message names the endpoint and call.
public struct EtcdError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// No endpoint answered within the timeout.
        case unreachable
        /// An endpoint answered with an HTTP error or a body that does not decode.
        case badAnswer
    }
    public let code: Code
    public let description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// etcd's v3 API through its JSON gateway (etcd 3.4: `POST /v3/...`, keys and
/// values base64, 64-bit numbers as decimal strings), with Foundation's
/// URLSession. Every call has a timeout (default 1 s) and tries the endpoints in
/// order, starting with the last one that answered.
public final class EtcdClient: @unchecked Sendable {
    let endpoints: [URL]
    private let session: URLSession
    private let preferred = NSLock()
    private var preferredIndex = 0

    /// `endpoints`: client URLs as `ClusterConfig.etcdEndpoints` holds them.
    public init(endpoints: [String]) {
        self.endpoints = endpoints.compactMap { URL(string: $0) }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 2
        configuration.httpMaximumConnectionsPerHost = 4
        session = URLSession(configuration: configuration)
    }

    // MARK: Wire shapes (the gateway's JSON of etcdserverpb)

    struct Header: Decodable { var revision: String? }
    struct KeyValue: Decodable {
        var key: String
        var value: String?
        var lease: String?
        var mod_revision: String?
    }
    struct RangeRequest: Encodable {
        var key: String
        var range_end: String?
    }
    struct RangeResponse: Decodable {
        var header: Header?
        var kvs: [KeyValue]?
    }
    struct PutRequest: Encodable {
        var key: String
        var value: String
        var lease: String?
    }
    struct DeleteRequest: Encodable {
        var key: String
    }
    struct Compare: Encodable {
        var target: String
        var key: String
        var create_revision: String?
        var lease: String?
    }
    struct RequestOp: Encodable {
        var request_put: PutRequest?
        var request_range: RangeRequest?
        var request_delete_range: DeleteRequest?
    }
    struct TxnRequest: Encodable {
        var compare: [Compare]
        var success: [RequestOp]
        var failure: [RequestOp]
    }
    struct ResponseOp: Decodable { var response_range: RangeResponse? }
    struct TxnResponse: Decodable {
        var header: Header?
        var succeeded: Bool?
        var responses: [ResponseOp]?
    }
    struct LeaseGrantRequest: Encodable { var TTL: String }
    struct LeaseGrantResponse: Decodable {
        var ID: String?
        var TTL: String?
        var error: String?
    }
    struct LeaseRequest: Encodable { var ID: String }
    struct LeaseKeepAliveResult: Decodable { var result: LeaseGrantResponse? }
    struct Empty: Decodable {}

    static func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
    static func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
    static func unb64(_ text: String?) -> [UInt8] { text.flatMap { Data(base64Encoded: $0) }.map { Array($0) } ?? [] }

    /// The end of the range of every key that starts with `prefix` (etcd's "prefix + 1").
    static func rangeEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return b64(bytes)
            }
            bytes.removeLast()
        }
        return b64([0])
    }

    // MARK: Calls

    /// POSTs `body` to `path` (e.g. `/v3/kv/range`) and decodes the answer.
    func call<Request: Encodable, Response: Decodable>(
        _ path: String, _ body: Request, as: Response.Type, timeout: TimeInterval = 1
    ) async throws(EtcdError) -> Response {
        guard !endpoints.isEmpty else { throw EtcdError(.unreachable, "no etcd endpoint configured") }
        let payload: Data
        do {
            payload = try JSONEncoder().encode(body)
        } catch {
            throw EtcdError(.badAnswer, "\(path): cannot encode the request: \(error)")
        }
        let start = preferred.withLock { preferredIndex }
        var failures: [String] = []
        for step in 0..<endpoints.count {
            let index = (start + step) % endpoints.count
            let base = endpoints[index]
            var request = URLRequest(url: base.appendingPathComponent(String(path.dropFirst())))
            request.httpMethod = "POST"
            request.httpBody = payload
            request.timeoutInterval = timeout
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            let data: Data
            let response: URLResponse
            do {
                (data, response) = try await session.data(for: request)
            } catch {
                failures.append("\(base.absoluteString): \(Self.shortText(error))")
                continue
            }
            preferred.withLock { preferredIndex = index }
            guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                throw EtcdError(.badAnswer, "\(base.absoluteString)\(path): HTTP \(status): \(String(decoding: data.prefix(200), as: UTF8.self))")
            }
            do {
                return try JSONDecoder().decode(Response.self, from: data)
            } catch {
                throw EtcdError(.badAnswer, "\(base.absoluteString)\(path): unexpected answer: \(String(decoding: data.prefix(200), as: UTF8.self))")
            }
        }
        throw EtcdError(.unreachable, "etcd unreachable: " + failures.joined(separator: "; "))
    }

    /// URLSession's errors carry their text in the user info.
    static func shortText(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSLocalizedDescriptionKey] as? String) ?? "\(error)"
    }

    /// Grants a lease of `ttl` seconds; returns its id.
    public func grantLease(ttl: Int) async throws(EtcdError) -> Int64 {
        let answer = try await call("/v3/lease/grant", LeaseGrantRequest(TTL: String(ttl)), as: LeaseGrantResponse.self)
        guard let text = answer.ID, let id = Int64(text), id != 0 else {
            throw EtcdError(.badAnswer, "lease grant: no lease id (\(answer.error ?? "no error text"))")
        }
        return id
    }

    /// Renews a lease; returns the TTL left (0: the lease is gone).
    public func keepAlive(lease: Int64) async throws(EtcdError) -> Int {
        let answer = try await call("/v3/lease/keepalive", LeaseRequest(ID: String(lease)), as: LeaseKeepAliveResult.self)
        return answer.result?.TTL.flatMap { Int($0) } ?? 0
    }

    /// Revokes a lease: every key on it goes at once.
    public func revoke(lease: Int64, timeout: TimeInterval = 1) async throws(EtcdError) {
        _ = try await call("/v3/lease/revoke", LeaseRequest(ID: String(lease)), as: Empty.self, timeout: timeout)
    }

    /// One key with its value and lease.
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: [UInt8]
        public var lease: Int64
    }

    /// Creates `key` with `value` on `lease` unless it exists. Returns nil when
    /// it was created, or the entry that holds the key.
    public func create(_ key: String, value: [UInt8], lease: Int64) async throws(EtcdError) -> Entry? {
        let k = Self.b64(key)
        let txn = TxnRequest(
            compare: [Compare(target: "CREATE", key: k, create_revision: "0")],
            success: [RequestOp(request_put: PutRequest(key: k, value: Self.b64(value), lease: String(lease)))],
            failure: [RequestOp(request_range: RangeRequest(key: k))])
        let answer = try await call("/v3/kv/txn", txn, as: TxnResponse.self)
        if answer.succeeded == true { return nil }
        guard let kv = answer.responses?.first?.response_range?.kvs?.first else {
            // Deleted between the compare and the range: report it held by nobody in particular.
            return Entry(key: key, value: [], lease: 0)
        }
        return Self.entry(kv)
    }

    /// Deletes `key` if it is on `lease`; true when it did.
    @discardableResult
    public func delete(_ key: String, ifLease lease: Int64) async throws(EtcdError) -> Bool {
        let k = Self.b64(key)
        let txn = TxnRequest(
            compare: [Compare(target: "LEASE", key: k, lease: String(lease))],
            success: [RequestOp(request_delete_range: DeleteRequest(key: k))], failure: [])
        return try await call("/v3/kv/txn", txn, as: TxnResponse.self).succeeded == true
    }

    /// Every key under `prefix`, and the revision they were read at.
    public func range(prefix: String) async throws(EtcdError) -> (revision: Int64, entries: [Entry]) {
        let answer = try await call(
            "/v3/kv/range", RangeRequest(key: Self.b64(prefix), range_end: Self.rangeEnd(prefix)), as: RangeResponse.self, timeout: 2)
        return (Int64(answer.header?.revision ?? "") ?? 0, (answer.kvs ?? []).map(Self.entry))
    }

    static func entry(_ kv: KeyValue) -> Entry {
        Entry(key: String(decoding: unb64(kv.key), as: UTF8.self), value: unb64(kv.value), lease: Int64(kv.lease ?? "") ?? 0)
    }
}

@testable import FivedCore

/// Public keys generated with ssh-keygen for these tests (the private halves were
/// discarded), with the fingerprints `ssh-keygen -lf` printed for them.
/// The sk-* keys were assembled from the ed25519/nistp256 points with
/// application "ssh:" and fingerprinted by `ssh-keygen -lf` likewise.
enum TestKeys {
    struct Key {
        let type: String
        let base64: String
        let comment: String
        let fingerprint: String
        var line: String { "\(type) \(base64) \(comment)" }
        var blob: PublicKeyBlob { PublicKeyBlob(base64: base64)! }
    }

    static let alice = Key(
        type: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAIL4b6R24WcWMVN6kpRMyyUxM/tvCsZSUWc2PQ0lZuyKN",
        comment: "alice@laptop", fingerprint: "SHA256:oJyPASxVnB7Fex5BVFymtxJJ4pj/lCmJKcAhqRDGUpQ")
    static let bob = Key(
        type: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAIBMIhMlrRRkiFUYDez+SHabtelE2Uj8ZS6lFQVRHF/cB",
        comment: "bob@desk", fingerprint: "SHA256:JojIpx5ijnofBRkp6HSAmpBVODIBEvzm5zYV2Zjxr3M")
    static let ed25519 = Key(
        type: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAIIUsiQY4ROGgTdfjJuMxzrFKUcL6rM1tMbqoxMqjhg3+",
        comment: "ed25519@fived-test", fingerprint: "SHA256:tMgH1MmxJT6xU3uTCrK6iZeJvCRXASVFkUm6RJIQ+co")
    static let ecdsa256 = Key(
        type: "ecdsa-sha2-nistp256",
        base64: "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBH0a9q0v+OcY86dGuUHp6kVCf3TzK1osU2BBhzJ/DIAW4vvmsKPwedTA4K649yR5f5nzxrfC7vT+4MLqze8kryQ=",
        comment: "ecdsab256@fived-test", fingerprint: "SHA256:KYL9oq+99lbs+6TL/2t23uQ/bY1n/M/ncYN9wXZ/+GU")
    static let ecdsa384 = Key(
        type: "ecdsa-sha2-nistp384",
        base64:
            "AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBFa0WVr7SRNS8O7G1j6QUm+OkJVf/+VEQsuDmGWfNzm1ixbJW3x8gPHQyLwAOpLxMrC0AJtCDTZIxezs9jT8GYEeLHu+4HXldw+9QDzw3aw8N4OLhHaWLUeUzq2jyHvflQ==",
        comment: "ecdsab384@fived-test", fingerprint: "SHA256:cI88W7+6ARY0O2qz5HZ+IyMqcGTDt59NVf1+aD3yW1Q")
    static let ecdsa521 = Key(
        type: "ecdsa-sha2-nistp521",
        base64:
            "AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBACepANPDJXLlJ8kRGvKQEpPcapPel5nQaOzDbXz3zcF5xTEQtvS7n/hye+Kwv/ysemHOSYw+mEbpmrLJUhg6kVe3QAt3KW3LT7PAqjLorscbCrV+ZY5mATUfkxTYJbKEiQmHtqN7kGt5WHBhiCQQFOxk2/I6JYSQ9URPm+fEyuRMLoLRg==",
        comment: "ecdsab521@fived-test", fingerprint: "SHA256:LW/L0r/UfGK2HfGQFqM6RxoxR7eZxz3nkJ75mzn49yE")
    static let rsa2048 = Key(
        type: "ssh-rsa",
        base64:
            "AAAAB3NzaC1yc2EAAAADAQABAAABAQC5oKhbAmkR/mm0pAi0oIzaWInmwhnoRjAQNhhwjsFI2yJMMrMD5Kf/tK7e6eULZTBk/eDaj6gJlwkRbqP41fXPdRmzfgntB5LBMR8xnMn6kzcOWVWLFwgponjV7zeJoFYjpCMgja0ZrQyOC2qTvMddLs8WgmIMPq2ekz/+tO2wcqmIg0q9iexf6/02RlOWEBU72QKCMU5A9s/ME5caLdaZVrK15PFwprHILO34F0fz1cR4LITt6BVuV0dy7auTzmOauUTFNxOJlb06aqEpB33O7Viksc6INR/8qz5uhqRuiub4skx7GS9/byKVPOAX48KrLHzXdCloqef0Tto3qTBN",
        comment: "rsab2048@fived-test", fingerprint: "SHA256:GVDVs1GfVVdMnrTAMragphzvPlCd+VlNPlUOUhVNe78")
    static let rsa1024 = Key(
        type: "ssh-rsa",
        base64:
            "AAAAB3NzaC1yc2EAAAADAQABAAAAgQCvA2PmUBhPsP8B82hIAKJ50jLpZcwHtOarg18nZHLp134QZjKBzxR6AjmfpCjB5d/qm8w5PBxqjcLjwpqcQNEQLd0E2ROb4eYVH84EVrwOjfzeMGpk6L2BgOpL6vDeeB5ijAFRMBHvtVB1iV6eu1ncs7Wmx+T3YPbFsN4bLxCOrQ==",
        comment: "rsab1024@fived-test", fingerprint: "SHA256:Se6zzXBgRo8bK8xMok/e5TnM8i9hCHq9uoO6bHU5Vv0")
    static let skEd25519 = Key(
        type: "sk-ssh-ed25519@openssh.com",
        base64: "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIIUsiQY4ROGgTdfjJuMxzrFKUcL6rM1tMbqoxMqjhg3+AAAABHNzaDo=",
        comment: "sked@fived-test", fingerprint: "SHA256:Xm86Xe8SWlsQmygBzKWSR7SmK4x3ij20dk+zwHiPNVk")
    static let skECDSA = Key(
        type: "sk-ecdsa-sha2-nistp256@openssh.com",
        base64:
            "AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBH0a9q0v+OcY86dGuUHp6kVCf3TzK1osU2BBhzJ/DIAW4vvmsKPwedTA4K649yR5f5nzxrfC7vT+4MLqze8kryQAAAAEc3NoOg==",
        comment: "skec@fived-test", fingerprint: "SHA256:Xpgx2CTcKwp7O5j6N3QtiUSJBnhhKr7sPQAlEkWxiE0")
    /// A user certificate for bob's key, signed by a throwaway CA (`ssh-keygen -s`).
    static let bobCertificate = Key(
        type: "ssh-ed25519-cert-v01@openssh.com",
        base64:
            "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIEGk6Ix7nn5GHrkrSgwSft8ra8mThE7G1oajNC28pbfgAAAAIBMIhMlrRRkiFUYDez+SHabtelE2Uj8ZS6lFQVRHF/cBAAAAAAAAAAAAAAABAAAABHRlc3QAAAAHAAAAA2JvYgAAAAAAAAAA//////////8AAAAAAAAAggAAABVwZXJtaXQtWDExLWZvcndhcmRpbmcAAAAAAAAAF3Blcm1pdC1hZ2VudC1mb3J3YXJkaW5nAAAAAAAAABZwZXJtaXQtcG9ydC1mb3J3YXJkaW5nAAAAAAAAAApwZXJtaXQtcHR5AAAAAAAAAA5wZXJtaXQtdXNlci1yYwAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACC5GNL8YsjGSIVK1BtEv0b0gXtoETDxSkzZplzshYa9DgAAAFMAAAALc3NoLWVkMjU1MTkAAABA2TX2/41E1V+/JWYmp/2VxUN+gfv6gF3jsBRI8hyrrIr48R86b+JCWAe7t0wvWUnBO7EIImD96c984Rep6waCDg==",
        comment: "bob@desk", fingerprint: "SHA256:JojIpx5ijnofBRkp6HSAmpBVODIBEvzm5zYV2Zjxr3M")
    /// The CA that signed `bobCertificate`.
    static let ca = Key(
        type: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAILkY0vxiyMZIhUrUG0S/RvSBe2gRMPFKTNmmXOyFhr0O",
        comment: "ca", fingerprint: "")

    static let all: [Key] = [alice, bob, ed25519, ecdsa256, ecdsa384, ecdsa521, rsa2048, rsa1024, skEd25519, skECDSA]

    /// Deterministic pseudo-random bytes (xorshift) for robustness tests.
    struct Noise {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
    }

    /// An SSH string: uint32 length, then the bytes.
    static func sshString(_ bytes: [UInt8]) -> [UInt8] {
        let n = UInt32(bytes.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + bytes
    }
    static func sshString(_ text: String) -> [UInt8] { sshString(Array(text.utf8)) }
}

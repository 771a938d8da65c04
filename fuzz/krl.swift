// libFuzzer harness: revoked_keys files, which are OpenSSH KRLs
// (KeyRevocationList) or text key lists (RevokedKeys), and the other key-list
// files read at authentication: trusted_user_ca_keys (TrustedCAKeysParser) and
// authorized principals files (AuthorizedPrincipalsParser). Operator input, but
// KRLs are often fetched from elsewhere. Built and run by fuzz/run.sh.
import FivedCore

/// A user certificate for bob's key, signed by a throwaway CA (as in the tests).
private let certificate = try! OpenSSHCertificate(
    base64:
        "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIEGk6Ix7nn5GHrkrSgwSft8ra8mThE7G1oajNC28pbfgAAAAIBMIhMlrRRkiFUYDez+SHabtelE2Uj8ZS6lFQVRHF/cBAAAAAAAAAAAAAAABAAAABHRlc3QAAAAHAAAAA2JvYgAAAAAAAAAA//////////8AAAAAAAAAggAAABVwZXJtaXQtWDExLWZvcndhcmRpbmcAAAAAAAAAF3Blcm1pdC1hZ2VudC1mb3J3YXJkaW5nAAAAAAAAABZwZXJtaXQtcG9ydC1mb3J3YXJkaW5nAAAAAAAAAApwZXJtaXQtcHR5AAAAAAAAAA5wZXJtaXQtdXNlci1yYwAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACC5GNL8YsjGSIVK1BtEv0b0gXtoETDxSkzZplzshYa9DgAAAFMAAAALc3NoLWVkMjU1MTkAAABA2TX2/41E1V+/JWYmp/2VxUN+gfv6gF3jsBRI8hyrrIr48R86b+JCWAe7t0wvWUnBO7EIImD96c984Rep6waCDg=="
)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKRL(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // A quarter of the inputs get the KRL magic, so the fuzzer reaches the
    // sections; text lists ('#', 's', 'e') keep their first byte.
    if let first = bytes.first, first & 3 == 1, !KeyRevocationList.isKRL(bytes) {
        bytes = KeyRevocationList.magic + bytes.dropFirst()
    }
    let list = RevokedKeys(contents: bytes, path: "fuzz")
    precondition(list == RevokedKeys(contents: bytes, path: "fuzz"), "parse is not deterministic")
    if let problem = list.problem {
        precondition(!problem.message.contains("\n"), "an error message must stay one line")
        precondition(list.revocation(of: certificate.key) == .unusable(problem), "an unusable file must revoke everything")
    }
    // Read as a KRL exactly when it has the magic, and then parsed or unusable.
    precondition(list.isKRL ? KeyRevocationList.isKRL(bytes) : (!KeyRevocationList.isKRL(bytes) || list.problem != nil))
    for revocation in [list.revocation(of: certificate), list.revocation(of: certificate.key), list.revocation(of: certificate.signatureKey)] {
        if let revocation { precondition(!revocation.description.contains("\n")) }
    }
    if KeyRevocationList.isKRL(bytes), let krl = try? KeyRevocationList(bytes: bytes, file: "fuzz") {
        _ = krl.revocation(of: certificate, file: "fuzz")
    }
    let (keys, problems) = TrustedCAKeysParser.parseFile(bytes, path: "fuzz")
    precondition(problems.allSatisfy { !$0.message.contains("\n") })
    _ = keys
    let (entries, principalProblems) = AuthorizedPrincipalsParser.parseFile(bytes, path: "fuzz")
    precondition(principalProblems.allSatisfy { !$0.message.contains("\n") })
    _ = entries
    return 0
}

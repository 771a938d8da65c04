import Foundation

/// OpenSSH's `ssh` in the client matrix, with the harness's usual isolation
/// (`Fived.sshArguments`: no user config, known_hosts in the test directory,
/// StrictHostKeyChecking=no, the test's key only).
///
/// Forms: `ssh -W NAME:1`, `ssh HOST NAME`, `ssh -s HOST NAME`. `-v` shows the
/// exit-signal request (ssh keeps no signal name and exits 255 for one). Run at
/// low priority, as every client of the matrix (`LowPriority`).
struct OpenSSHClient: ChannelClient {
    let fived: Fived

    func run(_ form: ClientForm, _ service: String, input: String?, timeout: Duration) async throws -> ClientRun {
        let options: [String]
        let command: [String]
        switch form {
        case .directTCPIP: (options, command) = (["-v", "-W", "\(service):1"], [])
        case .exec: (options, command) = (["-v"], [service])
        case .subsystem: (options, command) = (["-v", "-s"], [service])
        }
        let result = try await LowPriority.run(
            try Tools.path("ssh"), fived.sshArguments(options, command: command, key: fived.environment.key, user: nil),
            environment: Tools.environment(home: fived.directory.path), stdin: input.map { .file($0) } ?? .null,
            scratch: fived.directory.path, timeout: timeout)
        let sawSignal = result.stderr.contains("rtype exit-signal")
        let outcome: ChannelOutcome
        let succeeded: Bool
        switch (form.isSession, result.exitStatus) {
        case (_, nil): (outcome, succeeded) = (.none, false)
        case (false, let code?): (outcome, succeeded) = (.none, code == 0)
        case (true, 255?) where sawSignal: (outcome, succeeded) = (.exitSignal(nil), true)
        case (true, 255?): (outcome, succeeded) = (.none, false)
        case (true, let code?): (outcome, succeeded) = (.exitStatus(code), true)
        }
        return ClientRun(client: .openssh, form: form, service: service, process: result, outcome: outcome, clientSucceeded: succeeded)
    }
}

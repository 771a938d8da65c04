#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Interactive services (`pty = true`): a client's pty-req is granted, the
/// program runs on a pseudo-terminal with the client's TERM, modes and size,
/// window-change resizes it and ^C interrupts it, as under sshd. Driven by
/// paramiko's get_pty() and by stock `ssh -t` on a local terminal
/// (Peers/terminal_driver.py).
@Suite("Interactive services on a terminal", .timeLimit(.minutes(2)))
struct TerminalTests {
    /// A small REPL: reports its terminal, answers lines, exits 7 on SIGINT, 3 on `quit`.
    static let repl = """
        #!/bin/sh
        echo "TERM=$TERM tty=$(tty) size=$(stty size)"
        trap 'echo got-INT; exit 7' INT
        while read -r line; do
          case "$line" in
            size) stty size ;;
            quit) exit 3 ;;
            *) echo "line:$line" ;;
          esac
        done
        """

    func withREPL(pty: Bool = true, keyOptions: String? = nil, _ body: (Fived) async throws -> Void) async throws {
        let environment = try await TestEnvironment.make()
        if let keyOptions { try environment.setAuthorizedKeys([environment.key.authorizedLine(options: keyOptions)]) }
        let script = try environment.directory.write("repl.sh", Self.repl, mode: 0o755)
        var service = TestService.exec("repl", script)
        if pty { service.extra = ["pty = true"] }
        try await environment.withFived(FivedOptions(services: [service, .exec("echo", "/bin/cat")])) { fived in
            try await body(fived)
            #expect(await eventually(timeout: .seconds(10)) { fived.descendants().isEmpty }, "children left: \(fived.descendants())")
        }
    }

    /// The driver's STEP lines as name -> ok, and its exit status.
    func drive(_ fived: Fived, _ arguments: [String]) async throws -> (steps: [String: Bool], exit: String, output: String) {
        let run = try await Peers.run("terminal_driver.py", arguments, in: fived.directory, environment: ["TERM": "xterm"])
        var steps: [String: Bool] = [:]
        var exit = "none"
        for line in run.stdoutText.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 3)
            if words.first == "STEP", words.count >= 3 { steps[String(words[1])] = words[2] == "ok" }
            if words.first == "EXIT", words.count >= 2 { exit = String(words[1]) }
        }
        return (steps, exit, "\(run)")
    }

    /// "": paramiko's get_pty(), ^C typed; "no-echo": a pty-req with ECHO off in its
    /// modes (the typed line must not come back); "signal": a `signal` request instead of ^C.
    @Test(
        "paramiko on a terminal: TERM, size, echo (or none, by the modes), resize, ^C or a signal request, the exit status",
        arguments: ["", "no-echo", "signal"])
    func paramikoTerminal(_ variant: String) async throws {
        try await withREPL { fived in
            let (steps, exit, output) = try await drive(
                fived,
                ["paramiko", String(fived.port), fived.environment.key.privatePath, fived.environment.user, "repl"]
                    + (variant.isEmpty ? [] : [variant]))
            #expect(steps == ["start": true, "line": true, "resize": true, "interrupt": true], "\(output)")
            #expect(exit == "7", "\(output)")
        }
    }

    @Test("stock ssh -t on a terminal: the REPL runs as under sshd; ^C ends it with its status")
    func stockSSH() async throws {
        try await withREPL { fived in
            let ssh = try Tools.path("ssh")
            let arguments = [ssh] + fived.sshArguments(["-o", "LogLevel=error"], command: [], key: fived.environment.key, user: nil)
            let (steps, exit, output) = try await drive(fived, ["ssh", "repl", "--"] + arguments)
            #expect(steps == ["start": true, "line": true, "resize": true, "interrupt": true], "\(output)")
            #expect(exit == "7", "\(output)")
        }
    }

    @Test("ssh -tt with piped input: the program sees a terminal and its exit status comes back")
    func forcedTerminalWithPipedInput() async throws {
        try await withREPL { fived in
            let result = try await fived.ssh(["-tt", "-o", "LogLevel=error"], command: ["repl"], stdin: try fived.input(Array("hello\nquit\n".utf8)))
            #expect(result.exitStatus == 3, "\(result)")
            #expect(result.stdoutText.contains("tty=/dev/pts/"), "\(result)")
            #expect(result.stdoutText.contains("line:hello"), "\(result)")
            // A service without pty = true on the same connection keeps plain pipes.
            let plain = try await fived.ssh(["-T"], command: ["echo"], stdin: try fived.input(Array("x".utf8)))
            #expect(plain.stdoutText == "x", "\(plain)")
        }
    }

    @Test("without pty = true, or with no-pty on the key, pty-req is declined and the program runs on pipes")
    func declined() async throws {
        for (pty, options) in [(false, nil), (true, "no-pty"), (true, "restrict,port-forwarding")] as [(Bool, String?)] {
            try await withREPL(pty: pty, keyOptions: options) { fived in
                let (steps, exit, output) = try await drive(
                    fived, ["paramiko", String(fived.port), fived.environment.key.privatePath, fived.environment.user, "repl"])
                #expect(steps == ["declined": true], "pty=\(pty) \(options ?? ""): \(output)")
                #expect(exit == "3", "\(output)")
                // Stock ssh -tt gives up by itself when its pty is declined (its rule, as against sshd).
                let forced = try await fived.ssh(["-tt"], command: ["repl"], stdin: try fived.input(Array("quit\n".utf8)))
                #expect(forced.stderr.contains("PTY allocation request failed"), "\(forced)")
            }
        }
    }
}

/// How a service's process ended, as a session channel reports it (RFC 4254
/// §6.10): `exit-status` with the code, or `exit-signal` with the signal's name
/// without "SIG" (`KILL`, `PIPE`, ...).
public enum ExitReport: Sendable, Equatable, CustomStringConvertible {
    case status(Int32)
    case signal(String)

    /// Decodes a Linux wait status (waitpid(2)): the W* macros, which Swift cannot see.
    public init(waitStatus status: Int32) {
        let low = status & 0x7f
        if low != 0 && low != 0x7f {
            self = .signal(Self.signalName(low))
        } else {
            self = .status((status >> 8) & 0xff)
        }
    }

    /// The RFC 4254 §6.10 name of a Linux signal number ("SIG" dropped), or `SIGn` for others.
    public static func signalName(_ number: Int32) -> String {
        switch number {
        case 1: return "HUP"
        case 2: return "INT"
        case 3: return "QUIT"
        case 4: return "ILL"
        case 6: return "ABRT"
        case 8: return "FPE"
        case 9: return "KILL"
        case 10: return "USR1"
        case 11: return "SEGV"
        case 12: return "USR2"
        case 13: return "PIPE"
        case 14: return "ALRM"
        case 15: return "TERM"
        default: return "SIG\(number)"
        }
    }

    /// The Linux signal number for an RFC 4254 §6.10 name (as a `signal`
    /// request carries it), or nil for a name this list does not know.
    public static func signalNumber(_ name: String) -> Int32? {
        switch name {
        case "HUP": return 1
        case "INT": return 2
        case "QUIT": return 3
        case "ILL": return 4
        case "ABRT": return 6
        case "FPE": return 8
        case "KILL": return 9
        case "USR1": return 10
        case "SEGV": return 11
        case "USR2": return 12
        case "PIPE": return 13
        case "ALRM": return 14
        case "TERM": return 15
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .status(let code): return "exit status \(code)"
        case .signal(let name): return "signal \(name)"
        }
    }
}

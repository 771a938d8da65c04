/// The terminal modes of a `pty-req` (RFC 4254 §8, "Encoding of Terminal
/// Modes"; opcode 42 `IUTF8` from RFC 8160): a byte string of `opcode uint32`
/// pairs ended by `TTY_OP_END` (0). Opcodes 1 to 159 carry a uint32; 160 to 255
/// are undefined and stop the parse (the RFC's rule); known opcodes are kept in
/// order, unknown ones in 1…159 skipped, as sshd's ttymodes.c does.
public struct TerminalModes: Sendable, Equatable {
    /// One setting a client asked for.
    public enum Setting: Sendable, Equatable {
        /// A special character; nil disables it (the encoded value 255, `_POSIX_VDISABLE`).
        case character(ControlCharacter, UInt8?)
        /// A flag on or off.
        case flag(Flag, Bool)
        /// The input or output baud rate (opcodes 128, 129).
        case inputSpeed(UInt32)
        case outputSpeed(UInt32)
    }

    /// Special characters (opcodes 1–18). Those Linux has no slot for
    /// (`VDSUSP`, `VSTATUS`, `VFLUSH`) are parsed and then skipped where applied.
    public enum ControlCharacter: UInt8, Sendable, CaseIterable {
        case interrupt = 1, quit, erase, kill, endOfFile, endOfLine, endOfLine2, start, stop, suspend
        case delayedSuspend, reprint, wordErase, literalNext, flush, switchCharacter, status, discard
    }

    /// Flags (opcodes 30–42 input, 50–62 local, 70–75 output, 90–93 control).
    public enum Flag: UInt8, Sendable, CaseIterable {
        // c_iflag
        case ignoreParityErrors = 30, markParityErrors, checkParity, stripEighthBit, newlineToReturn
        case ignoreReturn, returnToNewline, uppercaseToLowercase, outputFlowControl, anyCharacterRestarts
        case inputFlowControl, ringBellOnFullInput, utf8Input
        // c_lflag
        case signals = 50, canonical, caseConversion, echo, echoErase, echoKill, echoNewline
        case noFlushAfterInterrupt, stopBackgroundOutput, extendedInput, echoControl, echoKillErasesLine, retypePendingInput
        // c_oflag
        case postProcessOutput = 70, lowercaseToUppercase, newlineToReturnNewline, returnToNewlineOnOutput
        case noReturnAtColumnZero, newlineDoesReturn
        // c_cflag
        case sevenBitCharacters = 90, eightBitCharacters, parity, oddParity
    }

    /// The settings, in the order the client gave them (a later one wins).
    public let settings: [Setting]

    /// At most this many pairs are read (the string has at most ~160 distinct opcodes).
    public static let maximumPairs = 256

    /// No settings: the pseudo-terminal keeps the system defaults.
    public init() {
        settings = []
    }

    /// Parses an encoded mode string. A string that ends inside a pair, or has
    /// more than `maximumPairs` pairs, is malformed: `FivedCoreError(.terminalModesMalformed)`.
    public init(encoded bytes: some Collection<UInt8>) throws(FivedCoreError) {
        var settings: [Setting] = []
        var index = bytes.startIndex
        var pairs = 0
        while index != bytes.endIndex {
            let opcode = bytes[index]
            index = bytes.index(after: index)
            if opcode == 0 || opcode >= 160 { break }
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard index != bytes.endIndex else {
                    throw FivedCoreError(.terminalModesMalformed, "terminal modes end inside the value of opcode \(opcode)")
                }
                value = value << 8 | UInt32(bytes[index])
                index = bytes.index(after: index)
            }
            pairs += 1
            guard pairs <= Self.maximumPairs else {
                throw FivedCoreError(.terminalModesMalformed, "more than \(Self.maximumPairs) terminal modes")
            }
            if let character = ControlCharacter(rawValue: opcode) {
                settings.append(.character(character, value == 255 ? nil : UInt8(truncatingIfNeeded: value)))
            } else if let flag = Flag(rawValue: opcode) {
                settings.append(.flag(flag, value != 0))
            } else if opcode == 128 {
                settings.append(.inputSpeed(value))
            } else if opcode == 129 {
                settings.append(.outputSpeed(value))
            }
        }
        self.settings = settings
    }
}

/// A terminal a client asked for with `pty-req` (RFC 4254 §6.2) and later
/// resized with `window-change` (§6.7): its type, size and modes.
public struct TerminalRequest: Sendable, Equatable {
    /// The `TERM` value, empty when the client sent none or one fived will not pass on.
    public let term: String
    public var columns: UInt32
    public var rows: UInt32
    public var widthPixels: UInt32
    public var heightPixels: UInt32
    public let modes: TerminalModes

    /// A request as received. `term` is kept only when it is 1 to 64 bytes of
    /// letters, digits and `-_.+` (terminfo names), so it is safe in an environment.
    public init(term: String, columns: UInt32, rows: UInt32, widthPixels: UInt32, heightPixels: UInt32, modes: TerminalModes) {
        let valid =
            (1...64).contains(term.utf8.count)
            && term.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || "-_.+".utf8.contains(byte)
            }
        self.term = valid ? term : ""
        self.columns = columns
        self.rows = rows
        self.widthPixels = widthPixels
        self.heightPixels = heightPixels
        self.modes = modes
    }

    /// The size as `struct winsize` takes it: each dimension clamped to 0…65535.
    public var clampedSize: (rows: UInt16, columns: UInt16, widthPixels: UInt16, heightPixels: UInt16) {
        func clamp(_ v: UInt32) -> UInt16 { UInt16(min(v, UInt32(UInt16.max))) }
        return (clamp(rows), clamp(columns), clamp(widthPixels), clamp(heightPixels))
    }
}

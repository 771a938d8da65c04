import FivedCore
#if canImport(Glibc)
import Glibc
#endif

extension TerminalModes {
    /// Applies the client's modes to `attributes` as sshd does (ttymodes.c
    /// `tty_parse_modes`): a special character sets its `c_cc` slot (255
    /// disables it), a flag sets or clears its bit. Characters and flags Linux
    /// has no slot for (`VDSUSP`, `VSTATUS`, `VFLUSH`) and the line speeds,
    /// which a pseudo-terminal ignores, are skipped.
    func apply(to attributes: inout termios) {
        for setting in settings {
            switch setting {
            case .character(let character, let value):
                guard let slot = Self.slot(character) else { continue }
                withUnsafeMutableBytes(of: &attributes.c_cc) { cc in
                    guard slot < cc.count else { return }
                    cc[slot] = value ?? 0  // _POSIX_VDISABLE is '\0' on Linux
                }
            case .flag(let flag, let on):
                let (field, bit) = Self.bit(flag)
                switch field {
                case .input: attributes.c_iflag = on ? attributes.c_iflag | bit : attributes.c_iflag & ~bit
                case .local: attributes.c_lflag = on ? attributes.c_lflag | bit : attributes.c_lflag & ~bit
                case .output: attributes.c_oflag = on ? attributes.c_oflag | bit : attributes.c_oflag & ~bit
                case .control: attributes.c_cflag = on ? attributes.c_cflag | bit : attributes.c_cflag & ~bit
                }
            case .inputSpeed, .outputSpeed:
                continue
            }
        }
    }

    private static func slot(_ character: ControlCharacter) -> Int? {
        switch character {
        case .interrupt: return Int(VINTR)
        case .quit: return Int(VQUIT)
        case .erase: return Int(VERASE)
        case .kill: return Int(VKILL)
        case .endOfFile: return Int(VEOF)
        case .endOfLine: return Int(VEOL)
        case .endOfLine2: return Int(VEOL2)
        case .start: return Int(VSTART)
        case .stop: return Int(VSTOP)
        case .suspend: return Int(VSUSP)
        case .reprint: return Int(VREPRINT)
        case .wordErase: return Int(VWERASE)
        case .literalNext: return Int(VLNEXT)
        case .switchCharacter: return Int(VSWTC)
        case .discard: return Int(VDISCARD)
        case .delayedSuspend, .status, .flush: return nil
        }
    }

    private enum Field { case input, local, output, control }

    private static func bit(_ flag: Flag) -> (Field, tcflag_t) {
        switch flag {
        case .ignoreParityErrors: return (.input, tcflag_t(IGNPAR))
        case .markParityErrors: return (.input, tcflag_t(PARMRK))
        case .checkParity: return (.input, tcflag_t(INPCK))
        case .stripEighthBit: return (.input, tcflag_t(ISTRIP))
        case .newlineToReturn: return (.input, tcflag_t(INLCR))
        case .ignoreReturn: return (.input, tcflag_t(IGNCR))
        case .returnToNewline: return (.input, tcflag_t(ICRNL))
        case .uppercaseToLowercase: return (.input, tcflag_t(IUCLC))
        case .outputFlowControl: return (.input, tcflag_t(IXON))
        case .anyCharacterRestarts: return (.input, tcflag_t(IXANY))
        case .inputFlowControl: return (.input, tcflag_t(IXOFF))
        case .ringBellOnFullInput: return (.input, tcflag_t(IMAXBEL))
        case .utf8Input: return (.input, tcflag_t(IUTF8))
        case .signals: return (.local, tcflag_t(ISIG))
        case .canonical: return (.local, tcflag_t(ICANON))
        case .caseConversion: return (.local, tcflag_t(XCASE))
        case .echo: return (.local, tcflag_t(ECHO))
        case .echoErase: return (.local, tcflag_t(ECHOE))
        case .echoKill: return (.local, tcflag_t(ECHOK))
        case .echoNewline: return (.local, tcflag_t(ECHONL))
        case .noFlushAfterInterrupt: return (.local, tcflag_t(NOFLSH))
        case .stopBackgroundOutput: return (.local, tcflag_t(TOSTOP))
        case .extendedInput: return (.local, tcflag_t(IEXTEN))
        case .echoControl: return (.local, tcflag_t(ECHOCTL))
        case .echoKillErasesLine: return (.local, tcflag_t(ECHOKE))
        case .retypePendingInput: return (.local, tcflag_t(PENDIN))
        case .postProcessOutput: return (.output, tcflag_t(OPOST))
        case .lowercaseToUppercase: return (.output, tcflag_t(OLCUC))
        case .newlineToReturnNewline: return (.output, tcflag_t(ONLCR))
        case .returnToNewlineOnOutput: return (.output, tcflag_t(OCRNL))
        case .noReturnAtColumnZero: return (.output, tcflag_t(ONOCR))
        case .newlineDoesReturn: return (.output, tcflag_t(ONLRET))
        case .sevenBitCharacters: return (.control, tcflag_t(CS7))
        case .eightBitCharacters: return (.control, tcflag_t(CS8))
        case .parity: return (.control, tcflag_t(PARENB))
        case .oddParity: return (.control, tcflag_t(PARODD))
        }
    }
}

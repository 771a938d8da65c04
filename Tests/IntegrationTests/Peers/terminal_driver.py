"""Drives an interactive service on a terminal, as a person at a keyboard would,
through paramiko's get_pty() or through stock `ssh -t` running on a local
pseudo-terminal: types lines, reads the echo, resizes the window, presses ^C.

    python3 terminal_driver.py paramiko PORT KEYFILE USER SERVICE [no-echo] [signal]
    python3 terminal_driver.py ssh SERVICE -- SSH ARGUMENTS...

The service is expected to print `TERM=... tty=... size=ROWS COLS` first, then
answer `size` with `stty size`, any other line with `line:LINE`, and ^C with
`got-INT` and exit status 7 (Tests/IntegrationTests/TerminalTests.swift writes it).
Prints `STEP name ok|failed <what was read>` per step, then `EXIT n`.
"""
import fcntl
import os
import pty
import select
import socket
import struct
import sys
import termios
import time


def step(name, ok, seen):
    print(f"STEP {name} {'ok' if ok else 'failed'} {seen!r}", flush=True)


def encode_modes(pairs):
    out = b""
    for opcode, value in pairs:
        out += bytes([opcode]) + struct.pack(">I", value)
    return out + b"\0"


def run_paramiko(port, key_path, user, service, no_echo, by_signal=False):
    import paramiko
    from paramiko.common import cMSG_CHANNEL_REQUEST

    from channel_message import channel_message

    transport = paramiko.Transport(socket.create_connection(("127.0.0.1", port), timeout=10))
    transport.start_client(timeout=10)
    transport.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(key_path))
    ch = transport.open_session(timeout=10)
    if no_echo:
        # pty-req with terminal modes ECHO (53) off and VINTR (1) ^C, which
        # paramiko's get_pty() cannot send (it sends none).
        m = channel_message(cMSG_CHANNEL_REQUEST, ch, "pty-req", True, "vt100", 91, 33, 0, 0, encode_modes([(53, 0), (1, 3)]))
        ch._event_pending()
        transport._send_user_message(m)
        ch._wait_for_event()
    else:
        try:
            ch.get_pty(term="xterm-256color", width=91, height=33)
        except paramiko.SSHException:
            # Declined: the program runs on pipes (and says so), as fived promises.
            ch = transport.open_session(timeout=10)
            ch.exec_command(service)
            ch.settimeout(10)
            first = ch.recv(4096)
            step("declined", b"tty=not a tty" in first, first)
            ch.sendall(b"quit\n")
            print(f"EXIT {ch.recv_exit_status()}", flush=True)
            return
    ch.exec_command(service)
    ch.settimeout(0.2)
    buffer = [b""]

    def read_until(token, seconds=10):
        deadline = time.time() + seconds
        while time.time() < deadline and token not in buffer[0]:
            try:
                piece = ch.recv(4096)
                if not piece:
                    break
                buffer[0] += piece
            except socket.timeout:
                pass
        seen, found = buffer[0], token in buffer[0]
        buffer[0] = b""
        return found, seen

    term = b"xterm-256color" if not no_echo else b"vt100"
    found, seen = read_until(b"size=33 91")
    step("start", found and b"TERM=" + term in seen and b"tty=/dev/pts/" in seen, seen)
    ch.send(b"secret\n")
    found, seen = read_until(b"line:secret")
    echoed = seen.startswith(b"secret\r\n")
    step("line", found and echoed != no_echo, seen)
    ch.resize_pty(width=120, height=40)
    ch.send(b"size\n")
    found, seen = read_until(b"40 120")
    step("resize", found, seen)
    if by_signal:
        # RFC 4254 §6.9 "signal", delivered to the program's process group.
        transport._send_user_message(channel_message(cMSG_CHANNEL_REQUEST, ch, "signal", False, "INT"))
    else:
        ch.send(b"\x03")
    found, seen = read_until(b"got-INT")
    step("interrupt", found, seen)
    print(f"EXIT {ch.recv_exit_status()}", flush=True)
    transport.close()


def run_ssh(service, argv):
    """Stock ssh with -t on a pseudo-terminal of its own (as in a terminal emulator)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv + ["-t", service])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 91, 0, 0))
    buffer = [b""]

    def read_until(token, seconds=15):
        deadline = time.time() + seconds
        while time.time() < deadline and token not in buffer[0]:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    piece = os.read(fd, 4096)
                except OSError:
                    break
                if not piece:
                    break
                buffer[0] += piece
        seen, found = buffer[0], token in buffer[0]
        buffer[0] = b""
        return found, seen

    found, seen = read_until(b"size=33 91")
    step("start", found and b"tty=/dev/pts/" in seen, seen)
    os.write(fd, b"secret\n")
    found, seen = read_until(b"line:secret")
    step("line", found, seen)
    # The local window changes: the kernel sends ssh (the terminal's foreground
    # group) SIGWINCH, and ssh sends window-change; then ask for the size.
    # ssh sends it from its own loop, so ask until the new size shows (or 10 tries).
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    for _ in range(10):
        os.write(fd, b"size\n")
        found, seen = read_until(b"40 120", seconds=1)
        if found:
            break
    step("resize", found, seen)
    os.write(fd, b"\x03")
    found, seen = read_until(b"got-INT")
    step("interrupt", found, seen)
    deadline = time.time() + 10
    status = None
    while time.time() < deadline:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            break
        try:
            os.read(fd, 4096)
        except OSError:
            pass
        time.sleep(0.05)
    print(f"EXIT {status}", flush=True)


def main():
    if sys.argv[1] == "paramiko":
        flags = sys.argv[6:]
        run_paramiko(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], "no-echo" in flags, "signal" in flags)
    else:
        service = sys.argv[2]
        argv = sys.argv[sys.argv.index("--") + 1:]
        run_ssh(service, argv)


if __name__ == "__main__":
    main()

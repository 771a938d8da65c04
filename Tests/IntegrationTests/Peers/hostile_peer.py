"""A raw SSH client (paramiko's Transport and Message API) that does what a
well-behaved client never does: tiny maximum packets, huge windows, window
adjusts that overflow, data, EOF and requests after its own CLOSE or EOF.

    python3 hostile_peer.py PORT KEYFILE USER SCENARIO [ARG]

Prints one line, `RESULT ...`, and exits 0 when the scenario ran (whatever fived
answered); the test reads the line and fived's log and /proc.
"""
import socket
import struct
import sys
import time

import paramiko
import paramiko.transport
from paramiko.common import (
    cMSG_CHANNEL_CLOSE,
    cMSG_CHANNEL_DATA,
    cMSG_CHANNEL_EOF,
    cMSG_CHANNEL_REQUEST,
    cMSG_CHANNEL_WINDOW_ADJUST,
)
from channel_message import channel_message

# paramiko clamps the maximum packet it asks for to 4096 and up; undo that.
paramiko.transport.MIN_PACKET_SIZE = 0


def connect(port, key_path, user):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=10)
    key = paramiko.Ed25519Key.from_private_key_file(key_path)
    transport.auth_publickey(user, key)
    return transport


def raw(transport, kind, channel, *fields):
    """Sends one channel message; if fived has already dropped the connection
    (it may, as soon as the previous message broke the protocol), does nothing."""
    if not transport.is_active():
        return
    try:
        transport._send_user_message(channel_message(kind, channel, *fields))
    except (EOFError, OSError, paramiko.SSHException):
        pass


def disconnected(transport, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not transport.is_active():
            return True
        time.sleep(0.05)
    return False


def main():
    port, key_path, user, scenario = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    arg = sys.argv[5] if len(sys.argv) > 5 else None
    transport = connect(port, key_path, user)
    if scenario == "tiny-packet":
        size = int(arg)
        try:
            ch = transport.open_channel("direct-tcpip", ("echo", 1), ("127.0.0.1", 9), max_packet_size=size, timeout=10)
        except paramiko.ChannelException as e:
            print(f"RESULT refused {e.code}")
            return
        except paramiko.SSHException:
            print("RESULT disconnected" if disconnected(transport, 5) else "RESULT no answer")
            return
        ch.sendall(b"hello")
        got = b""
        ch.settimeout(5)
        try:
            while len(got) < 5:
                piece = ch.recv(100)
                if not piece:
                    break
                got += piece
        except socket.timeout:
            pass
        print(f"RESULT opened {got!r}")
    elif scenario == "huge-window":
        ch = transport.open_channel("direct-tcpip", ("yes", 1), ("127.0.0.1", 9), window_size=2**32 - 1, timeout=10)
        wanted = int(arg)
        total = 0
        ch.settimeout(30)
        while total < wanted:
            piece = ch.recv(1 << 20)
            if not piece:
                break
            total += len(piece)
        print(f"RESULT read {'all' if total >= wanted else total}")
    elif scenario == "window-overflow":
        ch = transport.open_channel("direct-tcpip", ("echo", 1), ("127.0.0.1", 9), timeout=10)
        for _ in range(8):
            raw(transport, cMSG_CHANNEL_WINDOW_ADJUST, ch, 0xFFFFFFFF)
        ch.sendall(b"still here")
        ch.settimeout(10)
        got = b""
        while len(got) < 10:
            piece = ch.recv(100)
            if not piece:
                break
            got += piece
        print(f"RESULT echoed {got!r}")
    elif scenario in ("data-after-close", "data-after-eof", "eof-after-close", "request-after-close", "second-close"):
        ch = transport.open_channel("direct-tcpip", ("sink", 1), ("127.0.0.1", 9), timeout=10)
        ch.sendall(b"before")
        time.sleep(0.3)
        if scenario == "data-after-eof":
            raw(transport, cMSG_CHANNEL_EOF, ch)
        else:
            raw(transport, cMSG_CHANNEL_CLOSE, ch)
        if scenario in ("data-after-close", "data-after-eof"):
            raw(transport, cMSG_CHANNEL_DATA, ch, b"after")
        elif scenario == "eof-after-close":
            raw(transport, cMSG_CHANNEL_EOF, ch)
        elif scenario == "request-after-close":
            raw(transport, cMSG_CHANNEL_REQUEST, ch, b"env", True, b"A", b"B")
        else:
            raw(transport, cMSG_CHANNEL_CLOSE, ch)
        print("RESULT disconnected" if disconnected(transport, 10) else "RESULT still connected")
    else:
        print(f"RESULT unknown scenario {scenario}")
        sys.exit(2)


if __name__ == "__main__":
    main()

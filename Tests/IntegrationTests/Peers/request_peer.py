"""A paramiko client that sends channel and global requests the way OpenSSH,
PuTTY and others do, and records every message fived sends back, so a test can
check RFC 4254's rules: each want-reply request gets exactly one reply, in
order; a request without want-reply gets none; nothing arrives for a channel
after fived's CLOSE.

    python3 request_peer.py PORT KEYFILE USER SCENARIO [ARG]

It calls itself OpenSSH (`SSH-2.0-OpenSSH_9.2p1`), as the clients that send
eow@openssh.com and no-more-sessions@openssh.com do, except in the `replies-*`
scenarios, where it is PuTTY. Prints `RESULT ...` lines
and `AFTER-CLOSE n` (messages fived sent for a channel after its CLOSE), and
exits 0 when the scenario ran.
"""
import socket
import sys
import time

import paramiko
from paramiko.common import (
    cMSG_CHANNEL_REQUEST,
    MSG_CHANNEL_CLOSE,
    MSG_CHANNEL_FAILURE,
    MSG_CHANNEL_REQUEST,
    MSG_CHANNEL_SUCCESS,
)
from paramiko.message import Message

from channel_message import channel_message

CHANNEL_MESSAGES = range(91, 101)  # WINDOW_ADJUST .. FAILURE (RFC 4250 §4.1.2)


class Recorder:
    """Every channel message fived sent, as (type, recipient channel, request name)."""

    def __init__(self, transport):
        self.seen = []
        self.closed = set()
        self.after_close = []
        packetizer = transport.packetizer
        original = packetizer.read_message

        def read_message():
            ptype, m = original()
            if ptype in CHANNEL_MESSAGES:
                peek = Message(m.asbytes())
                chanid = peek.get_int()
                name = peek.get_text() if ptype == MSG_CHANNEL_REQUEST else None
                if chanid in self.closed:
                    self.after_close.append((ptype, chanid, name))
                self.seen.append((ptype, chanid, name))
                if ptype == MSG_CHANNEL_CLOSE:
                    self.closed.add(chanid)
            return ptype, m

        packetizer.read_message = read_message

    def replies(self, chanid):
        return ["S" if t == MSG_CHANNEL_SUCCESS else "F" for t, c, _ in self.seen if c == chanid and t in (MSG_CHANNEL_SUCCESS, MSG_CHANNEL_FAILURE)]

    def requests(self, chanid):
        return [n for t, c, n in self.seen if c == chanid and t == MSG_CHANNEL_REQUEST]


def connect(port, key_path, user, version):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    transport = paramiko.Transport(sock)
    transport.local_version = version
    # Replies are counted from the wire; paramiko's own handlers would close a
    # channel on its first FAILURE.
    table = dict(transport._channel_handler_table)
    table[MSG_CHANNEL_SUCCESS] = lambda chan, m: None
    table[MSG_CHANNEL_FAILURE] = lambda chan, m: None
    transport._channel_handler_table = table
    transport.start_client(timeout=10)
    recorder = Recorder(transport)
    transport.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(key_path))
    return transport, recorder


def request(transport, channel, name, want_reply, *fields):
    transport._send_user_message(channel_message(cMSG_CHANNEL_REQUEST, channel, name, want_reply, *fields))


def exec_channel(transport, command):
    """A session channel running `command` (an exec request paramiko waits on)."""
    ch = transport.open_session(timeout=10)
    request(transport, ch, "exec", True, command)
    return ch


def echo_round_trip(ch, payload=b"ping"):
    ch.settimeout(10)
    ch.sendall(payload)
    got = b""
    while len(got) < len(payload):
        piece = ch.recv(100)
        if not piece:
            break
        got += piece
    return got == payload


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def main():
    port, key_path, user, scenario = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    # The request scenarios call themselves PuTTY, whose requests without
    # want-reply (simple@putty...) must not be taken for OpenSSH's eow.
    version = "SSH-2.0-PuTTY_Release_0.78" if scenario.startswith("replies") else "SSH-2.0-OpenSSH_9.2p1 request_peer"
    transport, recorder = connect(port, key_path, user, version)
    if scenario in ("replies-session", "replies-direct"):
        # Every request PuTTY, OpenSSH and RFC 4254/4335 clients send on an open
        # channel, with want-reply, then two without; the echo after them proves
        # fived handled all of them before the replies are counted.
        if scenario == "replies-session":
            ch = exec_channel(transport, "echo")
            wait_for(lambda: len(recorder.replies(ch.chanid)) >= 1, 10)
            baseline = len(recorder.replies(ch.chanid))  # the exec's own SUCCESS
        else:
            ch = transport.open_channel("direct-tcpip", ("echo", 1), ("127.0.0.1", 9), timeout=10)
            baseline = 0
        asked = [
            ("winadj@putty.projects.tartarus.org", True),
            ("break", True, 1000),
            ("xon-xoff", True, True),
            ("env", True, "LANG", "C"),
            ("exit-status-like@example.com", True),
            ("simple@putty.projects.tartarus.org", False),
            ("unknown-quiet@example.com", False),
        ]
        for r in asked:
            request(transport, ch, r[0], r[1], *r[2:])
        ok = echo_round_trip(ch)
        wanted = sum(1 for r in asked if r[1])
        wait_for(lambda: len(recorder.replies(ch.chanid)) - baseline >= wanted, 5)
        time.sleep(0.2)  # room for a reply too many to show
        replies = recorder.replies(ch.chanid)[baseline:]
        print(f"RESULT echo {'ok' if ok else 'failed'} replies {''.join(replies)}")
        ch.close()
        wait_for(lambda: ch.chanid in recorder.closed, 10)
    elif scenario == "eow":
        # OpenSSH sends eow@openssh.com when its stdout fails (nchan.c chan_write_failed).
        ch = exec_channel(transport, "yes")
        ch.settimeout(10)
        got = 0
        while got < 65536:
            piece = ch.recv(65536)
            if not piece:
                break
            got += len(piece)
        request(transport, ch, "eow@openssh.com", False)
        closed = wait_for_close(ch, recorder, 10)
        names = recorder.requests(ch.chanid)
        print(f"RESULT {'closed' if closed else 'still open'} {' '.join(names)}")
    elif scenario == "no-more-sessions":
        first = exec_channel(transport, "echo")
        first_ok = echo_round_trip(first)
        transport.global_request("no-more-sessions@openssh.com", wait=False)
        again_ok = echo_round_trip(first, b"again")
        direct = transport.open_channel("direct-tcpip", ("echo", 1), ("127.0.0.1", 9), timeout=10)
        direct_ok = echo_round_trip(direct)
        try:
            transport.open_session(timeout=10)
            second = "opened"
        except (paramiko.SSHException, EOFError, OSError):
            second = "refused"
        disconnected = wait_for(lambda: not transport.is_active(), 10)
        print(f"RESULT first {'ok' if first_ok and again_ok else 'failed'} direct {'ok' if direct_ok else 'failed'} "
              f"second {second} {'disconnected' if disconnected else 'connected'}")
    else:
        print(f"RESULT unknown scenario {scenario}")
        sys.exit(2)
    print(f"AFTER-CLOSE {len(recorder.after_close)} {recorder.after_close}")
    transport.close()


def wait_for_close(ch, recorder, seconds):
    """Reads (and drops) what the channel still brings until fived's CLOSE."""
    deadline = time.time() + seconds
    ch.settimeout(0.2)
    while time.time() < deadline:
        if ch.chanid in recorder.closed:
            return True
        try:
            if not ch.recv(1 << 20) and ch.closed:
                break
        except socket.timeout:
            pass
        except OSError:
            break
    return ch.chanid in recorder.closed


if __name__ == "__main__":
    main()

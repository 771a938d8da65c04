#!/usr/bin/env python3
"""Plays a compromised fived daemon: takes a copy of the daemon's end of the
spawner socketpair with pidfd_getfd(2) (as root, so ptrace access holds) and
sends the privileged spawner requests the daemon never would. The spawner's
answers are read by the daemon, not here; what the spawner refused is in
fived's log, which the test reads.

usage: spawner_forge.py DAEMON_PID SOCKET_FD SERVICE STDERR_TARGET
Prints SENT N when every datagram went out.
"""
import ctypes
import os
import socket
import struct
import sys

SYS_pidfd_open = 434
SYS_pidfd_getfd = 438

libc = ctypes.CDLL(None, use_errno=True)


def syscall(number, *args):
    result = libc.syscall(number, *[ctypes.c_long(a) for a in args])
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def string(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def spawn(request_id, service, environment, source="192.0.2.7", terminal=0):
    body = bytes([1]) + struct.pack(">Q", request_id) + string(service)
    body += struct.pack(">H", len(environment)) + b"".join(string(e) for e in environment)
    return body + string(source) + bytes([terminal])


def main():
    pid, fd, service = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    pidfd = syscall(SYS_pidfd_open, pid, 0)
    stolen = syscall(SYS_pidfd_getfd, pidfd, fd, 0)
    sock = socket.socket(fileno=stolen)
    a, b = socket.socketpair()
    r, w = os.pipe()
    fds = [a.fileno(), w]
    datagrams = [
        # Not a request at all.
        (bytes([0xFF, 1, 2, 3]), []),
        # A program that is not a configured service.
        (spawn(9001, "/bin/sh", ["FIVED_USER=x"]), fds),
        # A configured service with an environment that would load a library into it.
        (spawn(9002, service, ["LD_PRELOAD=/tmp/evil.so"]), fds),
        # A PATH of the daemon's choosing (the spawner sets PATH itself).
        (spawn(9005, service, ["PATH=/tmp/evil"]), fds),
        # A terminal for a service without pty = true.
        (spawn(9003, service, ["FIVED_USER=x"], terminal=1), fds[:1]),
        # SIGKILL for a child no request started (the spawner names none by pid).
        (bytes([2]) + struct.pack(">Qi", 424242, 9), []),
        # The right shape with one descriptor too many.
        (spawn(9004, service, ["FIVED_USER=x"]), fds + [r]),
    ]
    sent = 0
    for data, passed in datagrams:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % len(passed), *passed))] if passed else [])
        sent += 1
    print("SENT", sent, flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Starts a program as systemd's socket activation does (sd_listen_fds(3)):
binds listening sockets on 127.0.0.1 with ports the kernel picks, puts them at
descriptors 3, 4, ... without close-on-exec, sets LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID (this process's pid, which exec keeps), and execs the program.

usage: socket_activation.py NAMES PROGRAM [ARG ...]
NAMES is colon-separated, one socket each, e.g. "ssh" or "ssh:tcpmux".
"""
import os
import socket
import sys


def main():
    names = sys.argv[1].split(":")
    program = sys.argv[2:]
    sockets = []
    for _ in names:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        sockets.append(s)
    for index, s in enumerate(sockets):
        target = 3 + index
        if s.fileno() != target:
            os.dup2(s.fileno(), target, inheritable=True)
        else:
            os.set_inheritable(target, True)
    env = dict(os.environ)
    env["LISTEN_FDS"] = str(len(sockets))
    env["LISTEN_FDNAMES"] = ":".join(names)
    env["LISTEN_PID"] = str(os.getpid())
    os.execve(program[0], program, env)


if __name__ == "__main__":
    main()

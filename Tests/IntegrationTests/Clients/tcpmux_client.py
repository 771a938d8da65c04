#!/usr/bin/python3
"""A raw RFC 1078 TCPMUX client on a plain socket, for the shared-port tests
(Tests/IntegrationTests/SharedPortTests.swift).

    tcpmux_client.py --port P --request TEXT [--input FILE] [--source ADDRESS]
    tcpmux_client.py --port P --silent

With --request: connects, sends TEXT (with its line end, as given; \\r and \\n
escapes are understood) and the bytes of --input in one write, shuts its write
side, and copies everything that comes back to stdout until the server closes.

With --silent: connects and sends nothing, as an SSH client that waits for the
server's identification string does; reads the server's first line and prints
it, then "elapsed=SECONDS" (from connect to that line's end) on stderr.
"""
import argparse
import socket
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--request")
    parser.add_argument("--input")
    parser.add_argument("--source", default="127.0.0.1")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.bind((args.source, 0))
    sock.connect(("127.0.0.1", args.port))
    started = time.monotonic()
    if args.silent:
        line = b""
        while not line.endswith(b"\n"):
            chunk = sock.recv(1)
            if not chunk:
                break
            line += chunk
        sys.stdout.buffer.write(line)
        print(f"elapsed={time.monotonic() - started:.3f}", file=sys.stderr)
        sock.close()
        return
    request = args.request.encode().decode("unicode_escape").encode("latin-1")
    if args.input:
        with open(args.input, "rb") as source:
            request += source.read()
    sock.sendall(request)
    sock.shutdown(socket.SHUT_WR)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)
    sock.close()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""An exec service for the half-close tests of the client matrix: it writes
"ready", then shuts its output down (shutdown(SHUT_WR) on the socket fived gives
it as stdin and stdout, so the channel gets EOF while the caller may still send),
then reads everything the caller sends until EOF and writes "SHA256 COUNT" of
it to the file named by its argument, then exits 0.

On a pipe or file instead of a socket (run by hand), it closes stdout instead.
"""
import hashlib
import os
import socket
import sys


def main():
    target = sys.argv[1]
    os.write(1, b"ready\n")
    try:
        socket.socket(fileno=os.dup(1)).shutdown(socket.SHUT_WR)
    except OSError:
        pass
    os.close(1)
    digest = hashlib.sha256()
    count = 0
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        digest.update(chunk)
        count += len(chunk)
    temporary = f"{target}.tmp"
    with open(temporary, "w") as out:
        out.write(f"{digest.hexdigest()} {count}\n")
    os.rename(temporary, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

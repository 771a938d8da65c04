#!/usr/bin/env python3
"""Many concurrent channels over a few ControlMaster connections.

  channels.py COUNT PAYLOAD_BYTES TIMEOUT_S DEST CTL1 [CTL2 ...] -- SSH_ARGV...

Starts COUNT `ssh -S CTLi -W DEST` mux clients, spread round-robin over the
control sockets (each one a master connection already up). Each writes its own
random payload to an echo service and keeps its channel open until *every*
channel has had its payload echoed back in full, so all COUNT channels are open
at the same moment. Then it closes each client's stdin (EOF, half-close), waits
for every client to exit, and checks each one's output is exactly its payload.

Prints one line: `ok=N of=COUNT concurrent=M seconds=T` (T: from the first start
to the moment all COUNT echoes were complete). Exit status 0 only when ok=COUNT.
"""
import os
import selectors
import subprocess
import sys
import time

count, size, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
dest = sys.argv[4]
sep = sys.argv.index("--")
ctls = sys.argv[5:sep]
ssh = sys.argv[sep + 1:]

sel = selectors.DefaultSelector()
procs = []
start = time.monotonic()
deadline = start + timeout
for i in range(count):
    payload = os.urandom(size)
    argv = ssh + ["-S", ctls[i % len(ctls)], "-o", "ControlMaster=no", "-W", dest, "mux"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    os.set_blocking(p.stdout.fileno(), False)
    p.stdin.write(payload)
    p.stdin.flush()
    rec = {"p": p, "payload": payload, "out": bytearray(), "eof": False}
    procs.append(rec)
    sel.register(p.stdout, selectors.EVENT_READ, rec)


def drain(until):
    """Reads whatever is ready; returns when until() holds or the deadline passes."""
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        for key, _ in sel.select(timeout=min(left, 1.0)):
            rec = key.data
            try:
                data = os.read(key.fileobj.fileno(), 65536)
            except BlockingIOError:
                continue
            if data:
                rec["out"] += data
            else:
                rec["eof"] = True
                sel.unregister(key.fileobj)
    return True


# Phase 1: every channel echoed its whole payload, none has sent EOF yet.
drain(lambda: all(len(r["out"]) >= size or r["eof"] for r in procs))
all_open = time.monotonic() - start
concurrent = sum(1 for r in procs if len(r["out"]) >= size and not r["eof"] and r["p"].poll() is None)

# Phase 2: EOF on every channel; each should close cleanly with nothing extra.
for r in procs:
    try:
        r["p"].stdin.close()
    except OSError:
        pass
drain(lambda: all(r["eof"] for r in procs))
ok = 0
for r in procs:
    try:
        rc = r["p"].wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        r["p"].kill()
        rc = -1
    if rc == 0 and bytes(r["out"]) == r["payload"]:
        ok += 1
print(f"ok={ok} of={count} concurrent={concurrent} seconds={all_open:.3f}")
sys.exit(0 if ok == count else 1)

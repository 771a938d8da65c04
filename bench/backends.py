#!/usr/bin/env python3
"""The benchmark's backend services, shared by fived and sshd so both forward to
the same thing.

  backends.py SINK_PORT ECHO_PORT RECORD_FILE [SOURCE_PORT SOURCE_BYTES]

- sink (127.0.0.1:SINK_PORT): reads everything with 1 MiB recv_into and, at EOF,
  appends the byte count of that connection to RECORD_FILE (one line each), so the
  benchmark can check that every upload arrived whole. A thread per connection:
  recv_into releases the GIL, so the sink costs a syscall per MiB and nothing more.
- echo (127.0.0.1:ECHO_PORT): sends back what it reads; at the client's EOF it
  half-closes and closes. One selector thread for all connections, so 1,000 idle
  or concurrent channels cost one process.
- source (127.0.0.1:SOURCE_PORT, when given): sends SOURCE_BYTES zero bytes to
  each connection in 1 MiB sends, then closes; what it receives is ignored. A
  download through a socket backend (bench/profile.sh --callgrind: an exec
  service's program is the spawner's child, outside the profiled process).

Loopback only. Prints "ready" on stdout once both listen.
"""
import os
import selectors
import socket
import sys
import threading

sink_port, echo_port, record = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
source_port, source_bytes = (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else (None, 0)
record_lock = threading.Lock()


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    return s


def sink_connection(conn):
    buf = bytearray(1 << 20)
    total = 0
    try:
        while True:
            n = conn.recv_into(buf)
            if n == 0:
                break
            total += n
    except OSError:
        pass
    finally:
        conn.close()
    with record_lock, open(record, "a") as f:
        f.write(f"{total}\n")


def sink_loop(s):
    while True:
        conn, _ = s.accept()
        threading.Thread(target=sink_connection, args=(conn,), daemon=True).start()


def echo_loop(s):
    sel = selectors.DefaultSelector()
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, None)
    pending = {}  # conn -> bytes not yet sent back
    while True:
        for key, events in sel.select():
            if key.data is None:
                try:
                    conn, _ = s.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                pending[conn] = [b"", False]
                sel.register(conn, selectors.EVENT_READ, "c")
                continue
            conn = key.fileobj
            state = pending[conn]
            try:
                if events & selectors.EVENT_READ and not state[1]:
                    data = conn.recv(65536)
                    if data:
                        state[0] += data
                    else:
                        state[1] = True  # client EOF
                if state[0]:
                    sent = conn.send(state[0])
                    state[0] = state[0][sent:]
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(conn)
                del pending[conn]
                conn.close()
                continue
            if state[1] and not state[0]:
                sel.unregister(conn)
                del pending[conn]
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                conn.close()
                continue
            # Read while nothing is queued; wait for writability while something is.
            want = selectors.EVENT_WRITE if state[0] else selectors.EVENT_READ
            sel.modify(conn, want, "c")


def source_connection(conn):
    block = bytes(1 << 20)
    left = source_bytes
    try:
        while left > 0:
            n = conn.send(block[:min(left, len(block))])
            left -= n
    except OSError:
        pass
    finally:
        conn.close()


def source_loop(s):
    while True:
        conn, _ = s.accept()
        threading.Thread(target=source_connection, args=(conn,), daemon=True).start()


sink = listener(sink_port)
echo = listener(echo_port)
threading.Thread(target=sink_loop, args=(sink,), daemon=True).start()
if source_port:
    threading.Thread(target=source_loop, args=(listener(source_port),), daemon=True).start()
print("ready", flush=True)
try:
    echo_loop(echo)
except KeyboardInterrupt:
    os._exit(0)

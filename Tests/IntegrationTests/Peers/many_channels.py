"""Opens COUNT exec channels to SERVICE over one SSH connection (paramiko),
WIDTH at a time: each sends one line, closes its side, reads the echo to EOF
and its exit status. For checking that a thousand programs started and ended
leave nothing behind in fived.

    python3 many_channels.py PORT KEYFILE USER SERVICE COUNT WIDTH

Prints `RESULT ok N` (channels whose echo and exit status 0 came back) and
`RESULT failed I: why` for the first that did not.
"""
import socket
import sys
import threading

import paramiko


def main():
    port, keyfile, user, service = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    count, width = int(sys.argv[5]), int(sys.argv[6])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=30)
    transport.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(keyfile))
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "failed": None}

    def worker():
        while True:
            with lock:
                if state["next"] >= count or state["failed"]:
                    return
                index = state["next"]
                state["next"] += 1
            try:
                channel = transport.open_session(timeout=30)
                channel.settimeout(30)
                channel.exec_command(service)
                line = ("line %d\n" % index).encode()
                channel.sendall(line)
                channel.shutdown_write()
                received = b""
                while True:
                    data = channel.recv(4096)
                    if not data:
                        break
                    received += data
                status = channel.recv_exit_status()
                channel.close()
                if received != line or status != 0:
                    raise RuntimeError("echo %r, exit status %d" % (received, status))
                with lock:
                    state["ok"] += 1
            except Exception as error:  # the first failure is the report
                with lock:
                    if not state["failed"]:
                        state["failed"] = "%d: %s" % (index, error)
                return

    threads = [threading.Thread(target=worker) for _ in range(width)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    transport.close()
    print("RESULT ok", state["ok"], flush=True)
    if state["failed"]:
        print("RESULT failed", state["failed"], flush=True)


if __name__ == "__main__":
    main()

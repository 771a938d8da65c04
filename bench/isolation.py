"""The hostile mix beside well-behaved traffic (issue: no caller can hurt another).

    python3 bench/isolation.py FIVED_BINARY [--duration S] [--seed N]

Starts fived on loopback with an echo service, a black-holed TCP backend (its
accept queue full, so connects never complete), a stalled backend (accepts,
never reads), and a sink. For --duration seconds it runs, all at once:

  well-behaved   4 paramiko clients doing 64-byte echo round trips on a
                 persistent channel every 10 ms, and opening fresh channels
                 that echo 64 KiB each (every byte checked)
  black hole     16 channels waiting on the black-holed backend, reopened as
                 they time out
  stalled        8 channels uploading into a backend that never reads
  tiny packets   channel opens asking a maximum packet of 10 (refused)
  violations     channels that send data after their own CLOSE (dropped)
  burst          100 `ssh -W echo:1` started at once, every 10 s
  idle flood     300 TCP connections from 127.0.0.2 that never speak
  killed         ssh clients uploading to echo, SIGKILLed at random moments

and prints the well-behaved clients' round-trip percentiles, bytes checked
and lost, and fived's CPU time, memory and descriptors (baseline, peak, and
after the mix has gone). Exit status 0 when no well-behaved byte was lost,
the 99th percentile round trip stayed under 50 ms and descriptors and
children came back to baseline.
"""
import argparse
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paramiko
import paramiko.transport
from paramiko.common import cMSG_CHANNEL_CLOSE, cMSG_CHANNEL_DATA
from paramiko.message import Message

paramiko.transport.MIN_PACKET_SIZE = 0
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid):
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        count += 1
            except OSError:
                pass
    return count


class Fived:
    def __init__(self, binary, work):
        self.work = work
        self.key_path = os.path.join(work, "client")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key_path], check=True)
        with open(self.key_path + ".pub") as f:
            public = f.read()
        with open(os.path.join(work, "authorized_keys"), "w") as f:
            f.write(public)
        os.chmod(os.path.join(work, "authorized_keys"), 0o600)
        # The black hole: listen(0), queue filled, never accepted.
        self.hole = socket.socket()
        self.hole.bind(("127.0.0.1", 0))
        self.hole.listen(0)
        self.fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(self.hole.getsockname())
            except BlockingIOError:
                pass
            self.fillers.append(s)
        # The stalled backend: accepts, never reads.
        self.stall = socket.socket()
        self.stall.bind(("127.0.0.1", 0))
        self.stall.listen(64)
        self.stalled = []
        threading.Thread(target=self._accept_stalled, daemon=True).start()
        # fived started as root runs an exec service only with a user: root, as the clients log in.
        exec_user = 'user = "root"\n' if os.geteuid() == 0 else ""
        config = f"""
listen = ["127.0.0.1:0"]
host_keys = ["{work}/host_key"]
authorized_keys = ["{work}/authorized_keys"]
log_level = "info"
[limits]
connect_timeout_seconds = 3
[services.echo]
exec = ["/bin/cat"]
{exec_user}[services.hole]
connect = "127.0.0.1:{self.hole.getsockname()[1]}"
[services.stall]
connect = "127.0.0.1:{self.stall.getsockname()[1]}"
"""
        with open(os.path.join(work, "fived.toml"), "w") as f:
            f.write(config)
        self.log = open(os.path.join(work, "fived.log"), "w+")
        self.process = subprocess.Popen([binary, "--config", os.path.join(work, "fived.toml")], stderr=self.log)
        self.port = None
        for _ in range(400):
            self.log.seek(0)
            for line in self.log:
                if " listening address=" in line:
                    self.port = int(line.split("address=127.0.0.1:")[1].split()[0])
            if self.port:
                break
            time.sleep(0.05)
        if not self.port:
            raise SystemExit("fived did not start")
        self.pid = self.process.pid

    def _accept_stalled(self):
        while True:
            try:
                conn, _ = self.stall.accept()
                self.stalled.append(conn)
            except OSError:
                return

    def transport(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        t = paramiko.Transport(sock)
        t.start_client(timeout=30)
        t.auth_publickey("bench", paramiko.Ed25519Key.from_private_key_file(self.key_path))
        return t

    def ssh(self, *args, **kw):
        return subprocess.Popen(
            ["ssh", "-F", "/dev/null", "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no",
             "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
             "-i", self.key_path, "-p", str(self.port), "-l", "bench", *args, "127.0.0.1"], **kw)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(15)


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.rtts = []
        self.checked = 0
        self.lost = 0
        self.errors = []
        self.counts = {}

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n


def well_behaved(fived, stop, results, rng):
    try:
        t = fived.transport()
        ch = t.open_channel("direct-tcpip", ("echo", 1), ("127.0.0.1", 1))
        ch.settimeout(10)
        payload = bytes(64)
        last_bulk = time.time()
        while not stop.is_set():
            started = time.perf_counter()
            ch.sendall(payload)
            got = b""
            while len(got) < len(payload):
                piece = ch.recv(len(payload) - len(got))
                if not piece:
                    raise RuntimeError("echo channel closed")
                got += piece
            with results.lock:
                results.rtts.append(time.perf_counter() - started)
                results.checked += len(payload)
                if got != payload:
                    results.lost += len(payload)
            if time.time() - last_bulk > 1.0:
                last_bulk = time.time()
                data = rng.randbytes(64 * 1024)
                bulk = t.open_channel("session")
                bulk.exec_command("echo")
                bulk.settimeout(20)
                bulk.sendall(data)
                bulk.shutdown_write()
                back = b""
                while True:
                    piece = bulk.recv(65536)
                    if not piece:
                        break
                    back += piece
                bulk.close()
                with results.lock:
                    results.checked += len(data)
                    if back != data:
                        results.lost += len(data)
            time.sleep(0.01)
        t.close()
    except Exception as e:  # a well-behaved client must never fail
        with results.lock:
            results.errors.append(f"well-behaved: {e!r}")


def black_hole(fived, stop, results):
    t = fived.transport()
    pending = []
    while not stop.is_set():
        while len(pending) < 16:
            try:
                pending.append(t.open_channel("direct-tcpip", ("hole", 1), ("127.0.0.1", 1), timeout=0.01))
            except Exception:
                # paramiko stops waiting after 10 ms; fived keeps the open pending until its 3 s connect timeout.
                results.count("black-hole opens")
                pending.append(None)
        pending = [p for p in pending if p is not None]
        time.sleep(0.2)
    t.close()


def stalled(fived, stop, results):
    t = fived.transport()
    channels = [t.open_channel("direct-tcpip", ("stall", 1), ("127.0.0.1", 1)) for _ in range(8)]
    block = bytes(32 * 1024)
    while not stop.is_set():
        for ch in channels:
            if ch.send_ready():
                ch.send(block)
        time.sleep(0.05)
    t.close()


def tiny_packets(fived, stop, results):
    while not stop.is_set():
        t = fived.transport()
        try:
            t.open_channel("direct-tcpip", ("echo", 1), ("127.0.0.1", 1), max_packet_size=10, timeout=5)
            results.count("tiny-packet opens accepted (should be 0)")
        except paramiko.ChannelException:
            results.count("tiny-packet opens refused")
        except paramiko.SSHException:
            results.count("tiny-packet opens unanswered")
        t.close()
        time.sleep(0.5)


def violations(fived, stop, results):
    while not stop.is_set():
        t = fived.transport()
        ch = t.open_channel("direct-tcpip", ("echo", 1), ("127.0.0.1", 1))
        for kind, payload in ((cMSG_CHANNEL_CLOSE, None), (cMSG_CHANNEL_DATA, b"late")):
            m = Message()
            m.add_byte(kind)
            m.add_int(ch.remote_chanid)
            if payload:
                m.add_string(payload)
            try:
                t._send_user_message(m)
            except Exception:
                pass
        deadline = time.time() + 5
        while t.is_active() and time.time() < deadline:
            time.sleep(0.05)
        results.count("violators dropped" if not t.is_active() else "violators not dropped")
        t.close()
        time.sleep(1)


def burst(fived, stop, results):
    while not stop.is_set():
        procs = [fived.ssh("-W", "echo:1", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                 for _ in range(100)]
        served = 0
        for i, p in enumerate(procs):
            try:
                out, _ = p.communicate(f"burst {i}".encode(), timeout=60)
                served += out == f"burst {i}".encode()
            except subprocess.TimeoutExpired:
                p.kill()
        results.count("burst clients", 100)
        results.count("burst clients served", served)
        stop.wait(10)


def idle_flood(fived, stop, results):
    sockets = []
    for _ in range(300):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", fived.port))
            sockets.append(s)
        except OSError:
            pass
    results.count("idle flood connections", len(sockets))
    stop.wait()
    for s in sockets:
        s.close()


def killed(fived, stop, results, rng):
    while not stop.is_set():
        p = fived.ssh("-W", "echo:1", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p.stdin.write(rng.randbytes(rng.randint(0, 1 << 20)))
        except OSError:
            pass
        time.sleep(rng.random() * 0.5)
        p.kill()
        p.wait()
        results.count("clients killed")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("fived")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="fived-isolation-")
    fived = Fived(args.fived, work)
    time.sleep(0.5)
    baseline = {"fds": fds(fived.pid), "children": children(fived.pid), "rss_kib": rss_kib(fived.pid)}
    cpu_before = proc_stat(fived.pid)
    results = Results()
    stop = threading.Event()
    threads = [threading.Thread(target=well_behaved, args=(fived, stop, results, random.Random(rng.random())))
               for _ in range(4)]
    threads += [threading.Thread(target=f, args=(fived, stop, results))
                for f in (black_hole, stalled, tiny_packets, violations, burst, idle_flood)]
    threads.append(threading.Thread(target=killed, args=(fived, stop, results, random.Random(rng.random()))))
    for t in threads:
        t.daemon = True
        t.start()
    peak_rss = 0
    started = time.time()
    while time.time() - started < args.duration:
        peak_rss = max(peak_rss, rss_kib(fived.pid))
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(90)
    cpu = proc_stat(fived.pid) - cpu_before
    # Let fived notice the goners (connect timeouts, stalled channels' EOF, grace).
    settled = False
    for _ in range(120):
        if fds(fived.pid) <= baseline["fds"] and children(fived.pid) <= baseline["children"]:
            settled = True
            break
        time.sleep(0.5)
    after = {"fds": fds(fived.pid), "children": children(fived.pid), "rss_kib": rss_kib(fived.pid)}
    fived.stop()
    rtts_ms = [r * 1000 for r in results.rtts]
    report = {
        "seed": seed,
        "duration_s": args.duration,
        "round_trips": len(rtts_ms),
        "rtt_ms": {"p50": percentile(rtts_ms, 50), "p99": percentile(rtts_ms, 99), "max": max(rtts_ms or [float("nan")])},
        "bytes_checked": results.checked,
        "bytes_lost": results.lost,
        "errors": results.errors,
        "hostile": results.counts,
        "fived_cpu_s": round(cpu, 2),
        "rss_kib": {"baseline": baseline["rss_kib"], "peak": peak_rss, "after": after["rss_kib"]},
        "fds": {"baseline": baseline["fds"], "after": after["fds"]},
        "children": {"baseline": baseline["children"], "after": after["children"]},
    }
    print(json.dumps(report, indent=2))
    ok = (results.lost == 0 and not results.errors and report["rtt_ms"]["p99"] < 50 and settled
          and results.counts.get("tiny-packet opens accepted (should be 0)", 0) == 0
          and results.counts.get("violators not dropped", 0) == 0)
    print("isolation:", "PASS" if ok else "FAIL", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

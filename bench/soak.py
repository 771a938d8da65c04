#!/usr/bin/env python3
"""Soak test for fived: thousands of connections and channels over a bounded time,
with clients, multiplexing masters and a backend killed at random, raw garbage
connections mixed in. Loopback only; stops by itself.

At the end fived's descriptors, threads, children and memory must be back near
where they were after warm-up, and every echoed byte must match what was sent
(exactly for the exec backend; for the TCP backend, which is killed now and then,
a prefix unless no kill happened during the channel).

Usage: soak.py FIVED_BINARY [--duration S] [--concurrency N] [--seed N]
Exit status 0 when every check holds. Prints a summary (also as JSON on the last line).
"""
import argparse, hashlib, json, os, random, signal, socket, struct, subprocess, sys, tempfile, threading, time

p = argparse.ArgumentParser()
p.add_argument("fived")
p.add_argument("--duration", type=float, default=180)
p.add_argument("--concurrency", type=int, default=12)
p.add_argument("--seed", type=int, default=int(time.time()))
p.add_argument("--keep", action="store_true", help="keep the scratch directory")
args = p.parse_args()
rng = random.Random(args.seed)
work = tempfile.mkdtemp(prefix="fived-soak-")
deadline = None

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{work}/id"], check=True)
with open(f"{work}/authorized_keys", "w") as f:
    f.write(open(f"{work}/id.pub").read())
port, backend_port = free_port(), free_port()
# fived started as root runs an exec service only with a user: root, as the clients log in.
exec_user = 'user = "root"\n' if os.geteuid() == 0 else ""
with open(f"{work}/fived.toml", "w") as f:
    f.write(f"""listen = ["127.0.0.1:{port}"]
host_keys = ["{work}/host_key"]
authorized_keys = ["{work}/authorized_keys"]
log_level = "info"
[limits]
login_grace_seconds = 5
max_startups = 512
max_startups_per_source = 256
[services.cat]
exec = ["/bin/cat"]
{exec_user}[services.tcpecho]
connect = "127.0.0.1:{backend_port}"
[services.sleeper]
exec = ["/bin/sleep", "600"]
{exec_user}""")

# --- the TCP echo backend, killed and restarted at random --------------------------
BACKEND = r'''
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(512)
def serve(c):
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
    except OSError: pass
    finally: c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
'''
backend_lock = threading.Lock()
backend_epoch = [0]
backend_proc = [None]

def start_backend():
    backend_proc[0] = subprocess.Popen([sys.executable, "-c", BACKEND, str(backend_port)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", backend_port), timeout=1).close(); return
        except OSError: time.sleep(0.05)

# --- fived ------------------------------------------------------------------------
log = open(f"{work}/fived.log", "w")
fived = subprocess.Popen([args.fived, "--config", f"{work}/fived.toml"], stderr=log)
for _ in range(200):
    if "listening" in open(f"{work}/fived.log").read(): break
    if fived.poll() is not None: sys.exit(f"fived exited: {open(f'{work}/fived.log').read()}")
    time.sleep(0.05)
start_backend()

SSH = ["ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={work}/known_hosts", "-o", "StrictHostKeyChecking=no",
       "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "IdentitiesOnly=yes", "-i", f"{work}/id",
       "-p", str(port), "-l", "soak"]

def descendants(pid):
    parents = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                st = open(f"/proc/{e}/stat").read(); parents[int(e)] = int(st[st.rindex(")") + 2:].split()[1])
            except (OSError, ValueError): pass
    found, frontier = [], {pid}
    while frontier:
        nxt = [c for c, par in parents.items() if par in frontier]; found += nxt; frontier = set(nxt)
    return found

def resources():
    pid = fived.pid
    status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
    return {"fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(status["Threads"]),
            "children": len(descendants(pid)), "rss_kib": int(status["VmRSS"].split()[0])}

stats = {k: 0 for k in ["connections", "channels", "bytes_checked", "clients_killed", "masters_killed",
                        "backend_kills", "garbage", "mismatches", "unexpected_failures", "tcp_cut_by_kill"]}
stats_lock = threading.Lock()
problems = []
def count(key, n=1):
    with stats_lock: stats[key] += n
def problem(text):
    with stats_lock:
        stats["mismatches" if "mismatch" in text else "unexpected_failures"] += 1
        if len(problems) < 30: problems.append(text)

def payload(r):
    return os.urandom(r.choice([0, 1, 100, 4096, 65536, r.randrange(1, 300_000)]))

def run_ssh(extra, data, timeout=60):
    return subprocess.run(SSH + extra, input=data, capture_output=True, timeout=timeout)

def stdio_cat(r, extra=[]):
    data = payload(r)
    out = run_ssh(extra + ["-W", "cat:1", "127.0.0.1"], data)
    count("channels"); count("connections")
    if out.returncode != 0 or out.stdout != data:
        problem(f"cat mismatch: rc={out.returncode} sent={len(data)} got={len(out.stdout)} err={out.stderr[-200:]!r}")
    else:
        count("bytes_checked", 2 * len(data))

def stdio_tcp(r):
    data = payload(r)
    epoch = backend_epoch[0]
    out = run_ssh(["-W", "tcpecho:1", "127.0.0.1"], data)
    count("channels"); count("connections")
    killed = backend_epoch[0] != epoch or epoch % 2 == 1
    if out.stdout != data[:len(out.stdout)]:
        problem(f"tcpecho mismatch: not a prefix (sent={len(data)} got={len(out.stdout)})")
    elif out.returncode == 0 and out.stdout == data:
        count("bytes_checked", 2 * len(data))
    elif killed:
        count("tcp_cut_by_kill"); count("bytes_checked", 2 * len(out.stdout))
    else:
        problem(f"tcpecho failed with a live backend: rc={out.returncode} sent={len(data)} got={len(out.stdout)} err={out.stderr[-200:]!r}")

def killed_client(r):
    service = r.choice(["cat", "sleeper", "tcpecho"])
    proc = subprocess.Popen(SSH + ["-W", f"{service}:1", "127.0.0.1"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(os.urandom(r.randrange(0, 100_000))); proc.stdin.flush()
    except OSError: pass
    time.sleep(r.uniform(0, 0.6))
    proc.kill(); proc.wait()
    count("clients_killed"); count("connections")

def garbage(r):
    s = socket.socket(); s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port))
        kind = r.randrange(4)
        if kind == 0: s.sendall(os.urandom(r.randrange(1, 5000)))
        elif kind == 1: s.sendall(b"SSH-2.0-soak\r\n" + os.urandom(r.randrange(1, 5000)))
        elif kind == 2: s.sendall(b"SSH-2.0-" + b"A" * 100_000)
        else:
            s.sendall(b"SSH-2.0-soak\r\n"); s.recv(100)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close(); count("garbage"); return
        while s.recv(65536): pass
    except OSError: pass
    finally: s.close()
    count("garbage")

# Multiplexing masters: many channels over few connections; killed now and then.
masters = {}
masters_lock = threading.Lock()
def master_path(i): return f"{work}/mux-{i}"
def ensure_master(i):
    """The live master i (started if need be), or None. The process is returned,
    not looked up later: chaos may replace masters[i] meanwhile, and a client must
    be judged against the master it was given."""
    with masters_lock:
        proc = masters.get(i)
        if proc and proc.poll() is None and os.path.exists(master_path(i)): return proc
        if proc and proc.poll() is None: return None  # still starting
        proc = subprocess.Popen(SSH + ["-N", "-o", "ControlMaster=yes", "-o", f"ControlPath={master_path(i)}", "127.0.0.1"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        masters[i] = proc; count("connections")
    for _ in range(100):
        if os.path.exists(master_path(i)): return proc
        time.sleep(0.05)
    return None

def muxed(r):
    i = r.randrange(2)
    epoch_master = ensure_master(i)
    if epoch_master is None: return
    data = payload(r)
    out = run_ssh(["-o", "ControlMaster=no", "-o", f"ControlPath={master_path(i)}", "-W", "cat:1", "127.0.0.1"], data)
    count("channels")
    if out.stdout != data[:len(out.stdout)]:
        problem(f"muxed mismatch: not a prefix (sent={len(data)} got={len(out.stdout)})")
    elif out.returncode == 0 and out.stdout == data:
        count("bytes_checked", 2 * len(data))
    elif masters.get(i) is not epoch_master or epoch_master.poll() is not None:
        pass  # its master was killed meanwhile
    else:
        problem(f"muxed failed at {time.strftime('%H:%M:%S')}: master {i} pid {epoch_master.pid} alive, rc={out.returncode} "
                f"sent={len(data)} got={len(out.stdout)} err={out.stderr[-200:]!r}")

ACTIONS = [(stdio_cat, 40), (stdio_tcp, 15), (killed_client, 12), (garbage, 10), (muxed, 23)]
def worker(seed):
    r = random.Random(seed)
    population = [a for a, w in ACTIONS for _ in range(w)]
    while time.time() < deadline:
        action = r.choice(population)
        try: action(r)
        except subprocess.TimeoutExpired as e: problem(f"{action.__name__}: timed out (hang?)")
        except Exception as e: problem(f"{action.__name__}: {type(e).__name__}: {e}")

def chaos(seed):
    r = random.Random(seed)
    while time.time() < deadline:
        time.sleep(r.uniform(2, 8))
        if r.random() < 0.5:
            with backend_lock:
                backend_epoch[0] += 1
                backend_proc[0].kill(); backend_proc[0].wait(); count("backend_kills")
                time.sleep(r.uniform(0, 1))
                start_backend()
                backend_epoch[0] += 1  # odd while down: a channel that saw an odd epoch may fail
        else:
            with masters_lock:
                i = r.randrange(2); proc = masters.get(i)
                if proc and proc.poll() is None:
                    proc.kill(); proc.wait(); count("masters_killed")
                    print(f"soak: {time.strftime('%H:%M:%S')} killed master {i} (pid {proc.pid})", file=sys.stderr, flush=True)
                    try: os.unlink(master_path(i))
                    except OSError: pass

def settle():
    """Waits until fived holds no children and its descriptor count stops falling."""
    last, stable = None, 0
    for _ in range(100):
        now = resources()
        if now["children"] == 0 and now == last: stable += 1
        else: stable = 0
        if stable >= 4: return now
        last = now; time.sleep(0.25)
    return resources()

# Warm-up: every kind of action once, so lazily made state is in the baseline.
deadline = time.time() + 3600
warm = random.Random(args.seed)
for action in [stdio_cat, stdio_tcp, garbage, killed_client, muxed]:
    action(warm)
with masters_lock:
    for proc in masters.values(): proc.kill(); proc.wait()
    masters.clear()
time.sleep(6)  # login grace (5 s) for anything half-open
baseline = settle()
stats_at_warm = dict(stats)
started = time.time()
deadline = started + args.duration
threads = [threading.Thread(target=worker, args=(args.seed + i,)) for i in range(args.concurrency)]
threads.append(threading.Thread(target=chaos, args=(args.seed - 1,)))
peak = dict(baseline)
for t in threads: t.start()
while any(t.is_alive() for t in threads):
    time.sleep(1)
    if fived.poll() is not None: problem(f"fived died: {fived.returncode}"); break
    now = resources()
    for k in peak: peak[k] = max(peak[k], now[k])
for t in threads: t.join()
with masters_lock:
    for proc in masters.values():
        if proc.poll() is None: proc.kill(); proc.wait()
time.sleep(6)
final = settle()
# A last good client: still serving.
check = run_ssh(["-W", "cat:1", "127.0.0.1"], b"still serving")
if check.stdout != b"still serving": problem(f"not serving at the end: {check}")
backend_proc[0].kill()
fived.send_signal(signal.SIGTERM)
try: code = fived.wait(timeout=15)
except subprocess.TimeoutExpired: fived.kill(); code = "hung on SIGTERM"
if code != 0: problem(f"fived exit on SIGTERM: {code}")
log.close()
logtext = open(f"{work}/fived.log").read()
closed = logtext.count(" channel closed ")
for bad in ["fatal", "critical", "Fatal error", "AddressSanitizer", "ThreadSanitizer"]:
    if bad in logtext: problem(f"log contains {bad!r}")

leaks = []
if final["fds"] > baseline["fds"] + 2: leaks.append(f"fds {baseline['fds']} -> {final['fds']}")
if final["threads"] != baseline["threads"]: leaks.append(f"threads {baseline['threads']} -> {final['threads']}")
if final["children"] != 0: leaks.append(f"children {final['children']}")
if final["rss_kib"] > baseline["rss_kib"] + 64 * 1024: leaks.append(f"rss {baseline['rss_kib']} -> {final['rss_kib']} KiB")
summary = {"seed": args.seed, "duration_s": round(time.time() - started, 1), "concurrency": args.concurrency,
           **{k: stats[k] - stats_at_warm.get(k, 0) for k in stats}, "channel_closed_lines": closed,
           "baseline": baseline, "peak": peak, "final": final, "leaks": leaks, "problems": problems}
print(f"soak: {summary['duration_s']} s, seed {args.seed}: {summary['connections']} connections, "
      f"{summary['channels']} channels, {summary['bytes_checked']} bytes checked, {summary['clients_killed']} clients, "
      f"{summary['masters_killed']} masters and {summary['backend_kills']} backends killed, {summary['garbage']} garbage connections")
print(f"soak: fived baseline {baseline}, peak {peak}, final {final}")
for text in problems: print("soak: PROBLEM:", text)
for text in leaks: print("soak: LEAK:", text)
print(json.dumps(summary))
if not args.keep and not problems and not leaks:
    subprocess.run(["rm", "-rf", work])
else:
    print(f"soak: scratch kept in {work}")
sys.exit(1 if problems or leaks else 0)

#!/usr/bin/env bash
# fived against OpenSSH's sshd doing the same forwarding, in the same run, on this
# machine, with the same stock ssh client, cipher, key exchange and backends.
# Every figure is printed as fived, sshd and their ratio; see docs/performance.md.
#
#   bench/run.sh            full run: 1 GiB transfers, 5 rounds, 1,000 idle
#                           connections, 1,000 concurrent channels, 16 streams
#                           of 256 MiB, 30 s of handshakes, 10,000 idle
#                           connections (~20 minutes)
#   bench/run.sh --quick    regression size: 128 MiB, 2 rounds, 100 idle
#                           connections, 200 channels, 16 streams of 32 MiB,
#                           10 s of handshakes, 1,000 idle connections (~5 minutes)
# Then bench/fleet.sh: a channel relayed through two fived nodes against a direct one.
#
# Rounds alternate the order: odd rounds run fived first, even rounds sshd first.
# Ratios are taken per round (both measured back to back) and the median printed.
#
# Environment (each overrides the mode's default):
#   FIVED_BENCH_BYTES     bytes per transfer          FIVED_BENCH_ROUNDS    rounds
#   FIVED_BENCH_CONNS     sequential connections      FIVED_BENCH_OPENS     sequential mux opens
#   FIVED_BENCH_IDLE      idle connections held       FIVED_BENCH_CHANNELS  concurrent channels
#   FIVED_BENCH_WARM      connections up before the memory baseline (default 100)
#   FIVED_BENCH_STREAM_BYTES  bytes per stream of the 16 concurrent ones
#   FIVED_BENCH_HANDSHAKE_S   seconds of the handshake-rate test (16 clients)
#   FIVED_BENCH_MANY_IDLE     connections of the many-idle test (fived only)
#   FIVED_BENCH_IDLE_S        seconds fived's CPU is sampled while they sit idle
#   FIVED_SCRATCH         swift build folder (default .build-bench)
#   FIVED_BENCH_NO_BUILD  set to 1 to use the fived already built there
#   FIVED_BENCH_KEEP      set to 1 to keep the temporary directory (logs, keys)
#   FIVED_BENCH_ONLY      throughput: only the transfers (for profiling the data path);
#                         streams, handshakes or many-idle: only that part
#
# Needs root for apt-get and for sshd (privilege separation, root login on loopback).
# Loopback only: both servers and the backends listen on 127.0.0.1.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

mode=full
case "${1:-}" in
    --quick) mode=quick ;;
    "" | --full) ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (use --quick or nothing)" >&2; exit 2 ;;
esac
if [[ $mode == quick ]]; then
    bytes=${FIVED_BENCH_BYTES:-$((128 << 20))} rounds=${FIVED_BENCH_ROUNDS:-2}
    conns=${FIVED_BENCH_CONNS:-20} opens=${FIVED_BENCH_OPENS:-20}
    idle=${FIVED_BENCH_IDLE:-100} nchannels=${FIVED_BENCH_CHANNELS:-200}
    stream_bytes=${FIVED_BENCH_STREAM_BYTES:-$((32 << 20))} handshake_s=${FIVED_BENCH_HANDSHAKE_S:-10}
    many_idle=${FIVED_BENCH_MANY_IDLE:-1000} idle_s=${FIVED_BENCH_IDLE_S:-20}
else
    bytes=${FIVED_BENCH_BYTES:-$((1 << 30))} rounds=${FIVED_BENCH_ROUNDS:-5}
    conns=${FIVED_BENCH_CONNS:-50} opens=${FIVED_BENCH_OPENS:-50}
    idle=${FIVED_BENCH_IDLE:-1000} nchannels=${FIVED_BENCH_CHANNELS:-1000}
    stream_bytes=${FIVED_BENCH_STREAM_BYTES:-$((256 << 20))} handshake_s=${FIVED_BENCH_HANDSHAKE_S:-30}
    many_idle=${FIVED_BENCH_MANY_IDLE:-10000} idle_s=${FIVED_BENCH_IDLE_S:-45}
fi
nstreams=16 handshake_clients=16
scratch=${FIVED_SCRATCH:-.build-bench}
warm=${FIVED_BENCH_WARM:-100}   # connections up before the memory baseline
only=${FIVED_BENCH_ONLY:-all}
case $only in all | throughput | streams | handshakes | many-idle) ;;
    *) echo "run.sh: FIVED_BENCH_ONLY must be all, throughput, streams, handshakes or many-idle" >&2; exit 2 ;; esac
part() { [[ $only == all || $only == "$1" ]]; }   # part NAME: is that part of the run on?
xfer_timeout=600   # one transfer, seconds
say() { printf '%s\n' "bench: $*" >&2; }

# ---- What it needs ----------------------------------------------------------
missing=()
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
for t in ssh ssh-keygen; do command -v $t >/dev/null || { missing+=(openssh-client); break; }; done
command -v python3 >/dev/null || missing+=(python3)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists libssh 2>/dev/null || missing+=(libssh-dev)
# bench/sshload.go, the load generator of the handshake and many-idle tests.
command -v go >/dev/null || missing+=(golang-go)
[[ -d /usr/share/gocode/src/golang.org/x/crypto/ssh ]] || missing+=(golang-golang-x-crypto-dev)
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then say "missing ${missing[*]}; run as root or install them"; exit 1; fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || exit 1
fi
[[ $(id -u) -eq 0 ]] || { say "run as root: the private sshd needs privilege separation and a root login"; exit 1; }
mkdir -p /run/sshd   # sshd's privilege-separation directory
# The many-idle test holds FIVED_BENCH_MANY_IDLE connections: fived needs a
# descriptor each (plus its own ~20), and so does the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) > many_idle + 1000)) || { say "ulimit -n is $(ulimit -n): too low for $many_idle connections"; exit 1; }

if [[ ${FIVED_BENCH_NO_BUILD:-0} != 1 ]]; then
    say "building fived (release, $scratch)"
    swift build -c release --scratch-path "$scratch" --product fived >/dev/null || { say "build failed"; exit 1; }
fi
fived_bin=$repo/$scratch/release/fived
[[ -x $fived_bin ]] || { say "no fived at $fived_bin"; exit 1; }

# ---- Processes it starts, and cleanup ----------------------------------------
work=$(mktemp -d /tmp/fived-bench.XXXXXX)
started=()   # every background pid this script starts
cleanup() {
    local p
    for p in "${started[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null; done
    if [[ ${FIVED_BENCH_KEEP:-0} == 1 ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port, wait_for, start_backends and the client options (SSH).
source "$repo/bench/common.sh"
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/client"
ssh-keygen -q -t ed25519 -N '' -C sshd-host -f "$work/sshd_host"
cp "$work/client.pub" "$work/authorized_keys"

# The backends both servers forward to.
start_backends; rc=$?
started+=($backends_pid)
((rc == 0)) || { say "backends did not start"; exit 1; }
# A mux client: through an existing master only (ProxyCommand=false makes a
# missing master an error instead of a silent new connection).
MUX=(ssh -F /dev/null -o ControlMaster=no -o ProxyCommand=false -o LogLevel=ERROR)

# The load generator (handshakes, many idle connections): Go, from Debian's packages.
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" go build -o "$work/sshload" "$repo/bench/sshload.go" \
    || { say "could not build bench/sshload.go"; exit 1; }

# One key may hold every connection of the many-idle test, and a channel on each at once (defaults 256 and 4096). The
# exec services run as the user sshd runs its commands as (the one logged in,
# this script's), so both servers start the same program as the same user.
printf '[limits]\nmax_connections_per_key = %d\nmax_channels_per_key = %d\n' $((many_idle + warm + 100)) $((many_idle + warm + 100)) >"$work/fived.toml"
printf '[services.%s]\nexec = ["/usr/bin/head", "-c", "%s", "/dev/zero"]\nuser = "%s"\n' \
    src "$bytes" "$(id -un)" stream "$stream_bytes" "$(id -un)" >>"$work/fived.toml"

fived_port= sshd_port= fived_pid= sshd_pid=
start_fived() {
    fived_port=$(free_port)
    : >"$work/fived.log"
    "$fived_bin" --config "$work/fived.toml" --listen "127.0.0.1:$fived_port" --host-key "$work/fived_host" \
        --authorized-keys "$work/authorized_keys" \
        --service "sink=tcp:127.0.0.1:$sink_port" --service "echo=tcp:127.0.0.1:$echo_port" \
        --log-level warning 2>>"$work/fived.log" &
    fived_pid=$!
    started+=($fived_pid)
    # At log level warning fived prints nothing when ready: wait until it serves a channel.
    wait_for 20 "${SSH[@]}" -p "$fived_port" -o ControlMaster=no -W echo:1 127.0.0.1 </dev/null 2>/dev/null \
        || { say "fived did not start: $(tail -3 "$work/fived.log")"; exit 1; }
}
start_sshd() {
    sshd_port=$(free_port)
    cat >"$work/sshd_config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/sshd_host
AuthorizedKeysFile $work/authorized_keys
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 256
LogLevel ERROR
EOF
    /usr/sbin/sshd -D -e -f "$work/sshd_config" 2>>"$work/sshd.log" &
    sshd_pid=$!
    started+=($sshd_pid)
    wait_for 20 "${SSH[@]}" -p "$sshd_port" -o ControlMaster=no -W "127.0.0.1:$echo_port" 127.0.0.1 </dev/null 2>/dev/null \
        || { say "sshd did not start: $(tail -3 "$work/sshd.log")"; exit 1; }
}
stop_server() {  # stop_server PID
    kill "$1" 2>/dev/null
    wait_for 10 bash -c "! kill -0 $1 2>/dev/null" || kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
port_of() { [[ $1 == fived ]] && echo "$fived_port" || echo "$sshd_port"; }
# The same backend named the way each server expects: a service name for fived,
# host:port for sshd.
dest_of() {  # dest_of SERVER sink|echo
    if [[ $1 == fived ]]; then echo "$2:1"; else
        [[ $2 == sink ]] && echo "127.0.0.1:$sink_port" || echo "127.0.0.1:$echo_port"
    fi
}

# ---- One measurement each; print the figure on stdout, or FAIL -------------
# Upload: BYTES zeros from the client through `ssh -W` to the sink, which records
# how many bytes it got. Figure: MB/s (10^6 bytes/s) over the whole ssh command.
# Each transfer prints two figures: MB/s, and the server's CPU seconds per GiB
# (user + system of the server process and of the children it reaped: sshd's
# per-connection process, and for downloads the `head` each server runs). CPU
# time is far less disturbed by other load on the machine than wall time.
upload() {  # upload SERVER CIPHER
    : >"$work/sink.record"
    local t0 t1 c0 n0
    c0=$(cpu_ticks "$1") n0=$(children "$(server_pid "$1")")
    t0=$(now)
    head -c "$bytes" /dev/zero | timeout "$xfer_timeout" "${SSH[@]}" -p "$(port_of "$1")" -c "$2" \
        -W "$(dest_of "$1" sink)" 127.0.0.1 || { echo FAIL FAIL; return; }
    t1=$(now)
    wait_for 10 test -s "$work/sink.record" || { echo FAIL FAIL; return; }
    [[ $(cat "$work/sink.record") == "$bytes" ]] || { echo FAIL FAIL; return; }
    rates "$t0" "$t1" "$c0" "$1" "$n0"
}
# Download: BYTES zeros from `head -c BYTES /dev/zero` run per channel (fived's
# exec service `src`, sshd's exec request with the same command), counted by wc -c.
download() {  # download SERVER CIPHER
    local cmd t0 t1 c0 n0 got
    [[ $1 == fived ]] && cmd=src || cmd="head -c $bytes /dev/zero"
    c0=$(cpu_ticks "$1") n0=$(children "$(server_pid "$1")")
    t0=$(now)
    got=$(timeout "$xfer_timeout" "${SSH[@]}" -n -p "$(port_of "$1")" -c "$2" 127.0.0.1 "$cmd" | wc -c)
    t1=$(now)
    [[ $got == "$bytes" ]] || { echo FAIL FAIL; return; }
    rates "$t0" "$t1" "$c0" "$1" "$n0"
}
server_pid() { [[ $1 == fived ]] && echo "$fived_pid" || echo "$sshd_pid"; }
# fived's privileged spawner (its child, `fived --internal-spawner`), which
# starts and reaps the exec services: its CPU and its children count as fived's.
spawners() { pgrep -P "$1" -f -- --internal-spawner; }
# utime + stime + cutime + cstime of the server process (and fived's spawner), in clock ticks.
cpu_ticks() {
    local pid; pid=$(server_pid "$1")
    cat "/proc/$pid/stat" $(for s in $(spawners "$pid"); do echo "/proc/$s/stat"; done) \
        | awk '{ sum += $14 + $15 + $16 + $17 } END { print sum }'
}
# Children still to be reaped: the server's own, and its spawner's.
children() {
    local n; n=$(pgrep -c -P "$1")
    for s in $(spawners "$1"); do n=$((n + $(pgrep -c -P "$s"))); done
    echo "$n"
}
children_at_most() { (($(children "$1") <= $2)); }
rates() {  # rates T0 T1 TICKS0 SERVER CHILDREN0: prints "MB/s CPU-s-per-GiB"
    # The connection's process (sshd) or child (fived's head) must be reaped
    # before its CPU time shows in the server's cutime.
    local ticks=FAIL
    wait_for 10 children_at_most "$(server_pid "$4")" "$5" && ticks=$(($(cpu_ticks "$4") - $3))
    awk -v n="$bytes" -v s="$(elapsed "$1" "$2")" -v c="$ticks" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.1f ", n / s / 1e6; if (c == "FAIL") print "FAIL"; else printf "%.2f\n", c / hz / (n / 1073741824) }'
}
# Connection time: N sequential new connections (TCP, key exchange, auth, one
# direct-tcpip channel to the echo service, one byte each way). Figure: ms each.
connect_time() {  # connect_time SERVER
    local i t0 t1 out
    t0=$(now)
    for ((i = 0; i < conns; i++)); do
        out=$(printf x | timeout 30 "${SSH[@]}" -p "$(port_of "$1")" -c aes128-gcm@openssh.com \
            -W "$(dest_of "$1" echo)" 127.0.0.1) && [[ $out == x ]] || { echo FAIL; return; }
    done
    t1=$(now)
    awk -v n="$conns" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { printf "%.2f", s * 1000 / n }'
}
# Channel open over an established connection: N sequential `ssh -S ctl -W echo`
# mux clients through one ControlMaster, one byte each way. Figure: ms each.
channel_open_time() {  # channel_open_time SERVER
    local i t0 t1 out ctl="$work/ctlm-$1.0"
    t0=$(now)
    for ((i = 0; i < opens; i++)); do
        out=$(printf x | timeout 30 "${MUX[@]}" -S "$ctl" -W "$(dest_of "$1" echo)" mux) && [[ $out == x ]] \
            || { echo FAIL; return; }
    done
    t1=$(now)
    awk -v n="$opens" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { printf "%.2f", s * 1000 / n }'
}

# start_masters SERVER N PREFIX: N ControlMaster connections (`ssh -M -N`), at most
# 8 authenticating at once (fived's max_startups_per_source is 16, sshd's
# MaxStartups here 64); their pids go to started[] and $work/PREFIX.pids.
start_masters() {
    local server=$1 n=$2 prefix=$3 i j batch=8
    : >"$work/$prefix.pids"
    for ((i = 0; i < n; i += batch)); do
        for ((j = i; j < i + batch && j < n; j++)); do
            "${SSH[@]}" -p "$(port_of "$server")" -c aes128-gcm@openssh.com -M -S "$work/$prefix.$j" \
                -o ControlPersist=no -N 127.0.0.1 </dev/null 2>>"$work/masters.err" &
            started+=($!)
            echo $! >>"$work/$prefix.pids"
        done
        for ((j = i; j < i + batch && j < n; j++)); do
            wait_for 30 test -S "$work/$prefix.$j" || { say "master $prefix.$j did not come up"; return 1; }
        done
    done
}
stop_masters() {  # stop_masters PREFIX
    local p
    while read -r p; do kill "$p" 2>/dev/null; done <"$work/$1.pids"
    while read -r p; do wait "$p" 2>/dev/null; done <"$work/$1.pids"
    rm -f "$work/$1".*
}

# A process and all its descendants, one pid a line (sshd forks per connection).
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2; all[NR] = $1 }
        END { keep[root] = 1; changed = 1
              while (changed) { changed = 0
                  for (i in all) { p = all[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } } }
              for (p in keep) print p }'
}
# PSS in KiB of a process tree.
pss_tree() {
    local total=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# ---- Results ------------------------------------------------------------------
declare -A V_fived V_sshd R   # figure -> space-separated values per round
figures=()
record() {  # record FIGURE FIVED SSHD
    [[ -n ${R[$1]:-} ]] || figures+=("$1")
    V_fived[$1]+="$2 " V_sshd[$1]+="$3 "
    local r=FAIL
    [[ $2 != FAIL && $3 != FAIL ]] && r=$(awk -v a="$2" -v b="$3" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "FAIL" }')
    R[$1]+="$r "
    printf '%s\n' "$1 fived=$2 sshd=$3 ratio=$r" >>"$work/raw.txt"
}
# record_abs FIGURE VALUE TARGET: a figure of fived alone, judged on its value
# (sshd is not run for it); TARGET as target_of prints them, or "-".
declare -A ABS_TARGET
record_abs() {
    [[ -n ${R[$1]:-} ]] || figures+=("$1")
    V_fived[$1]+="$2 " V_sshd[$1]="- " R[$1]="- " ABS_TARGET[$1]=$3
    printf '%s\n' "$1 fived=$2" >>"$work/raw.txt"
}
median() {  # median VALUES...: FAIL if any value failed
    local v
    for v in "$@"; do [[ $v == FAIL ]] && { echo FAIL; return; }; done
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# pair FIGURE[|FIGURE2] FUNCTION ARGS...: both servers, order by round; a
# function printing two values fills two figures.
pair() {
    local figs=$1 f=$2 a b; shift 2
    if ((round % 2)); then a=$($f fived "$@"); b=$($f sshd "$@")
    else b=$($f sshd "$@"); a=$($f fived "$@"); fi
    local fig1=${figs%%|*} fig2=${figs#*|}
    say "round $round: $figs: fived $a, sshd $b"
    record "$fig1" "${a%% *}" "${b%% *}"
    [[ $fig2 == "$figs" ]] || record "$fig2" "${a#* }" "${b#* }"
}

say "mode $mode: $((bytes >> 20)) MiB per transfer, $rounds rounds, $conns connections, $opens channel opens, $idle idle connections, $nchannels channels; work dir $work"
start_fived
start_sshd

# Masters for the channel-open figure, one per server, kept for all rounds.
if [[ $only == all ]]; then
    start_masters fived 1 ctlm-fived || exit 1
    start_masters sshd 1 ctlm-sshd || exit 1
fi

mb=$((bytes >> 20))
part throughput && for ((round = 1; round <= rounds; round++)); do
    for cipher in aes128-gcm chacha20-poly1305; do
        pair "upload $cipher MB/s ($mb MiB)|upload $cipher server CPU s/GiB" upload "$cipher@openssh.com"
    done
    for cipher in aes128-gcm chacha20-poly1305; do
        pair "download $cipher MB/s ($mb MiB)|download $cipher server CPU s/GiB" download "$cipher@openssh.com"
    done
    [[ $only == all ]] || continue
    pair "connection time ms (new connection, 1 byte each way)" connect_time
    pair "channel open ms (over ControlMaster, 1 byte each way)" channel_open_time
done
if [[ $only == all ]]; then
    stop_masters ctlm-fived
    stop_masters ctlm-sshd
fi

# ---- Many channels: N concurrent direct-tcpip channels over 4 masters ----------
# Runs in this shell (it starts processes); sets many_ok and many_s.
many_channels() {  # many_channels SERVER
    many_ok=FAIL many_s=FAIL
    start_masters "$1" 4 "many-$1" || return
    local ctls=() j out
    for ((j = 0; j < 4; j++)); do ctls+=("$work/many-$1.$j"); done
    out=$(timeout 300 python3 "$repo/bench/channels.py" "$nchannels" 16384 240 "$(dest_of "$1" echo)" \
        "${ctls[@]}" -- "${MUX[@]}" 2>>"$work/channels.err")
    echo "$out" >>"$work/raw.txt"
    stop_masters "many-$1"
    many_ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$out") many_s=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$out")
    : "${many_ok:=FAIL}" "${many_s:=FAIL}"
}
if [[ $only == all ]]; then
    many_channels fived; f_ok=$many_ok f_s=$many_s
    many_channels sshd; s_ok=$many_ok s_s=$many_s
    say "many channels: fived $f_ok/$nchannels intact in ${f_s}s, sshd $s_ok/$nchannels in ${s_s}s"
    [[ $f_ok == "$nchannels" ]] || f_s=FAIL
    [[ $s_ok == "$nchannels" ]] || s_s=FAIL
    record "$nchannels channels over 4 connections: intact" "$f_ok" "$s_ok"
    record "$nchannels channels over 4 connections: s to all echoed" "$f_s" "$s_s"
fi

# ---- Many streams at once: 16 transfers over 16 connections, or over 2 masters --
# Each stream moves STREAM_BYTES (uploads into the sink, downloads from `head`
# run per channel, as above); all start together. Figures: aggregate MB/s (all
# bytes over the time until the last stream finished) and fairness (the
# slowest stream's MB/s over the fastest's, each from the common start).
# Runs in this shell; sets streams_mbs and streams_fair (FAIL if a stream lost bytes).
streams() {  # streams SERVER up|down conns|mux
    local server=$1 direction=$2 via=$3 i t0 ctl dest cmd ends="$work/stream-ends" counts="$work/stream-counts"
    streams_mbs=FAIL streams_fair=FAIL
    : >"$ends"; : >"$counts"; : >"$work/sink.record"
    if [[ $via == mux ]]; then start_masters "$server" 2 "streams-$server" || return; fi
    [[ $server == fived ]] && cmd=stream || cmd="head -c $stream_bytes /dev/zero"
    dest=$(dest_of "$server" sink)
    local client=("${SSH[@]}" -p "$(port_of "$server")" -c aes128-gcm@openssh.com)
    local pids=()
    t0=$(now)
    for ((i = 0; i < nstreams; i++)); do
        [[ $via == mux ]] && client=("${MUX[@]}" -S "$work/streams-$server.$((i % 2))")
        if [[ $direction == up ]]; then
            (head -c "$stream_bytes" /dev/zero | timeout "$xfer_timeout" "${client[@]}" -W "$dest" 127.0.0.1 \
                && echo "$EPOCHREALTIME" >>"$ends") &
        else
            (n=$(timeout "$xfer_timeout" "${client[@]}" -n 127.0.0.1 "$cmd" | wc -c) \
                && echo "$n" >>"$counts" && echo "$EPOCHREALTIME" >>"$ends") &
        fi
        pids+=($!)
    done
    wait "${pids[@]}"
    # Each stream writes its end line last; give a straggler's append a moment.
    wait_for 30 lines_at_least "$ends" "$nstreams"
    if [[ $direction == up ]]; then
        wait_for 10 lines_at_least "$work/sink.record" "$nstreams"
        cp "$work/sink.record" "$counts"
    fi
    [[ $via == mux ]] && stop_masters "streams-$server"
    local whole
    whole=$(grep -cx "$stream_bytes" "$counts")
    echo "streams $server $direction $via: $whole of $nstreams whole; ends $(tr '\n' ' ' <"$ends")" >>"$work/raw.txt"
    ((whole == nstreams)) || return
    read -r streams_mbs streams_fair < <(awk -v t0="$t0" -v n="$stream_bytes" -v k="$nstreams" '
        { d = $1 - t0; if (NR == 1 || d > last) last = d; if (NR == 1 || d < first) first = d }
        END { printf "%.1f %.3f\n", k * n / last / 1e6, first / last }' "$ends")
}
lines_at_least() { (($(wc -l <"$1") >= $2)); }   # lines_at_least FILE N
if part streams; then
    smb=$((stream_bytes >> 20))
    for direction in up down; do
        for via in conns mux; do
            [[ $via == conns ]] && how="16 connections" || how="2 masters x 8"
            [[ $direction == up ]] && what=upload || what=download
            streams fived "$direction" "$via"; f_mbs=$streams_mbs f_fair=$streams_fair
            streams sshd "$direction" "$via"; s_mbs=$streams_mbs s_fair=$streams_fair
            say "streams $what over $how: fived $f_mbs MB/s (fairness $f_fair), sshd $s_mbs MB/s (fairness $s_fair)"
            record "16 x $smb MiB ${what}s over $how: MB/s" "$f_mbs" "$s_mbs"
            record "16 x $smb MiB ${what}s over $how: slowest/fastest" "$f_fair" "$s_fair"
        done
    done
fi

# ---- Handshake rate: 16 clients connecting in a loop ---------------------------
# bench/sshload.go (one Go process, no process start per connection), 16
# goroutines each looping for HANDSHAKE_S seconds: TCP, curve25519 key exchange,
# public-key authentication, one direct-tcpip channel echoing a byte, close.
# Both servers allow 256 unauthenticated connections at once (fived's default
# max_startups, sshd's MaxStartups 256 here); 16 clients stay under both.
# Figures: completed connections per second, and the p99 time of one.
handshakes() {  # handshakes SERVER: sets hs_rate and hs_p99
    local out
    hs_rate=FAIL hs_p99=FAIL
    out=$(timeout $((handshake_s + 120)) "$work/sshload" handshakes "127.0.0.1:$(port_of "$1")" "$work/client" \
        "$(dest_of "$1" echo)" "$handshake_clients" "$handshake_s" 2>>"$work/sshload.err")
    echo "handshakes $1: $out" >>"$work/raw.txt"
    [[ $out == *" failures=0 "* ]] || return
    hs_rate=$(sed -n 's/.*per_second=\([0-9.]*\).*/\1/p' <<<"$out") hs_p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$out")
}
if part handshakes; then
    handshakes fived; f_rate=$hs_rate f_p99=$hs_p99
    handshakes sshd; s_rate=$hs_rate s_p99=$hs_p99
    say "handshakes: fived $f_rate/s (p99 $f_p99 ms), sshd $s_rate/s (p99 $s_p99 ms)"
    record "handshakes/s (16 clients, ${handshake_s} s; kex, auth, 1 channel)" "$f_rate" "$s_rate"
    record "handshake p99 ms under that load" "$f_p99" "$s_p99"
fi

# ---- Memory: idle authenticated connections, on fresh servers ------------------
# PSS of the server's whole process tree with N `ssh -M -N` connections up, minus
# its PSS before them, divided by N. The "before" is taken with WARM connections
# already up (held to the end): a fresh fived keeps memory that its first
# connections free and the next ones reuse (malloc does not hand it back), so
# without them the first hundred connections look nearly free. Then every one of
# the N connections must answer: one new channel on each echoes its bytes.
# Runs in this shell (it restarts the server); sets mem_kib and mem_answering.
memory() {  # memory SERVER
    local pid base with out
    mem_kib=FAIL mem_answering=0
    if [[ $1 == fived ]]; then stop_server "$fived_pid"; start_fived; pid=$fived_pid
    else stop_server "$sshd_pid"; start_sshd; pid=$sshd_pid; fi
    start_masters "$1" "$warm" "warm-$1" || return
    sleep 2
    base=$(pss_tree "$pid")
    start_masters "$1" "$idle" "idle-$1" || return
    sleep 2
    with=$(pss_tree "$pid")
    say "memory $1: with $warm warm-up connections ${base} KiB, with $idle more ${with} KiB in $(tree_pids "$pid" | wc -l) processes"
    local ctls=() j
    for ((j = 0; j < idle; j++)); do ctls+=("$work/idle-$1.$j"); done
    out=$(timeout 300 python3 "$repo/bench/channels.py" "$idle" 16 240 "$(dest_of "$1" echo)" \
        "${ctls[@]}" -- "${MUX[@]}" 2>>"$work/channels.err")
    echo "memory $1: $out" >>"$work/raw.txt"
    mem_answering=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$out")
    : "${mem_answering:=0}"
    stop_masters "idle-$1"
    stop_masters "warm-$1"
    mem_kib=$(awk -v a="$base" -v b="$with" -v n="$idle" 'BEGIN { printf "%.1f", (b - a) / n }')
}
if [[ $only == all ]]; then
    memory fived; f_mem=$mem_kib f_ans=$mem_answering
    memory sshd; s_mem=$mem_kib s_ans=$mem_answering
    [[ $f_ans == "$idle" ]] || f_mem=FAIL
    [[ $s_ans == "$idle" ]] || s_mem=FAIL
    record "$idle idle connections: answering" "$f_ans" "$s_ans"
    record "$idle idle connections: PSS KiB per connection" "$f_mem" "$s_mem"
fi

# ---- Many idle connections (fived only) ----------------------------------------
# A fresh fived; bench/sshload.go opens WARM connections (held to the end) and
# then MANY_IDLE more, 16 authenticating at once, answering keepalives while
# they sit. Figures: seconds to establish them, PSS per connection above the
# WARM baseline (as the memory test above), fived's CPU while they sit idle for
# IDLE_S seconds (client_alive_interval_seconds is 15: every connection gets
# keepalives meanwhile), its descriptors, and how many answer a new channel
# afterwards (all at once). sshd is not run: at ~1.3 MiB per connection,
# 10,000 would need ~13 GiB.
# hold NAME COUNT: an sshload holding COUNT connections, driven through a FIFO.
hold() {
    mkfifo "$work/$1.in"
    "$work/sshload" idle "127.0.0.1:$fived_port" "$work/client" echo:1 "$2" 16 <"$work/$1.in" >"$work/$1.out" 2>>"$work/sshload.err" &
    started+=($!)
    eval "exec {${1}_fd}>\"\$work/\$1.in\""
}
many_idle_test() {
    local pid base with c0 c1 out
    stop_server "$fived_pid"; start_fived; pid=$fived_pid
    hold warm_hold "$warm"
    wait_for 120 grep -q established "$work/warm_hold.out" || { say "warm-up connections did not come up"; return; }
    sleep 2
    base=$(pss_tree "$pid")
    hold many_hold "$many_idle"
    wait_for 900 grep -q established "$work/many_hold.out" || { say "$many_idle connections did not come up"; return; }
    out=$(cat "$work/many_hold.out")
    echo "many idle: $out" >>"$work/raw.txt"
    [[ $out == *" failures=0 "* ]] || say "many idle: $out"
    mi_established=$(sed -n 's/.*established=\([0-9]*\).*/\1/p' <<<"$out")
    mi_seconds=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$out")
    sleep 2
    with=$(pss_tree "$pid")
    mi_pss=$(awk -v a="$base" -v b="$with" -v n="$mi_established" 'BEGIN { printf "%.1f", (b - a) / n }')
    mi_fds=$(ls "/proc/$pid/fd" | wc -l)
    c0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    sleep "$idle_s"
    c1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    mi_cpu=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v s="$idle_s" 'BEGIN { printf "%.2f", t / hz / s * 100 }')
    echo answer >&"$many_hold_fd"
    wait_for 300 grep -q answering "$work/many_hold.out" || { say "the answering round did not finish"; }
    mi_answering=$(sed -n 's/.*answering=\([0-9]*\).*/\1/p' "$work/many_hold.out")
    echo "many idle: $(grep answering "$work/many_hold.out")" >>"$work/raw.txt"
    say "many idle: $mi_established connections in ${mi_seconds}s, $mi_pss KiB PSS each, $mi_fds descriptors, CPU $mi_cpu % of a core over ${idle_s}s idle, $mi_answering answering"
    echo quit >&"$many_hold_fd"; echo quit >&"$warm_hold_fd"
    exec {many_hold_fd}>&- {warm_hold_fd}>&-
}
if part many-idle; then
    mi_established=FAIL mi_seconds=FAIL mi_pss=FAIL mi_fds=FAIL mi_cpu=FAIL mi_answering=FAIL
    many_idle_test
    [[ $mi_answering == "$many_idle" ]] || mi_pss=FAIL
    record_abs "$many_idle idle connections (fived only): established in s" "$mi_seconds" "-"
    record_abs "$many_idle idle connections: answering a new channel" "${mi_answering:-0}" "= $many_idle"
    record_abs "$many_idle idle connections: PSS KiB per connection" "$mi_pss" "<= 25"
    record_abs "$many_idle idle connections: fived CPU % of a core, ${idle_s} s idle" "$mi_cpu" "-"
    record_abs "$many_idle idle connections: fived's open descriptors" "$mi_fds" "-"
fi

# ---- The table -----------------------------------------------------------------
target_of() {
    case "$1" in
        *"CPU s/GiB"*) echo "<= 0.8" ;;
        *" over "*"MB/s"*) echo ">= 1.2" ;;
        *"handshakes/s"*) echo ">= 3.0" ;;
        *slowest/fastest* | *"p99 ms"*) echo "-" ;;
        upload* | download*) echo ">= 1.0" ;;
        *"time ms"* | "channel open"*) echo "<= 1.0" ;;
        *"PSS"*) echo "<= 0.05" ;;
        *"s to all echoed"*) echo "-" ;;
        *intact* | *answering*) echo "= 1.0" ;;
    esac
}
verdict() {  # verdict RATIO TARGET
    [[ $1 == FAIL ]] && { echo FAIL; return; }
    case "$2" in
        "-") echo "-" ;;
        *) awk -v r="$1" -v t="$2" 'BEGIN { split(t, p, " "); op = p[1]; v = p[2] + 0
               ok = (op == ">=") ? r >= v : (op == "<=") ? r <= v + 1e-9 : (r == v)
               print ok ? "pass" : "MISS" }' ;;
    esac
}
{
    echo
    echo "fived vs sshd ($mode: $rounds rounds, $((bytes >> 20)) MiB; $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
    printf '%-58s %10s %10s %8s %8s %5s\n' figure fived sshd ratio target ok
    for fig in "${figures[@]}"; do
        # shellcheck disable=SC2086
        if [[ -n ${ABS_TARGET[$fig]:-} ]]; then
            fm=$(median ${V_fived[$fig]}) t=${ABS_TARGET[$fig]}
            printf '%-58s %10s %10s %8s %8s %5s\n' "$fig" "$fm" - - "$t" "$(verdict "$fm" "$t")"
            continue
        fi
        fm=$(median ${V_fived[$fig]}) sm=$(median ${V_sshd[$fig]}) rm=$(median ${R[$fig]})
        t=$(target_of "$fig")
        printf '%-58s %10s %10s %8s %8s %5s\n' "$fig" "$fm" "$sm" "$rm" "$t" "$(verdict "$rm" "$t")"
    done
    echo "(values and ratio are medians over rounds; ratio = fived / sshd per round; MB/s, handshakes/s and slowest/fastest higher"
    echo " is better; ms, s, KiB and CPU lower; a target on a line with no sshd figure applies to fived's own value)"
} | tee "$work/table.txt"
echo
echo "per-round values:"
cat "$work/raw.txt"
[[ -n ${FIVED_BENCH_OUT:-} ]] && cp "$work/table.txt" "$FIVED_BENCH_OUT"
# A channel relayed through two fived nodes (the fleet) against a direct one.
[[ $only == all ]] && bash "$repo/bench/fleet.sh" $([[ $mode == quick ]] && echo --quick) "$fived_bin"
exit 0

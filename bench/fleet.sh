#!/usr/bin/env bash
# A relayed channel against a direct one, on one machine: a real etcd and two
# fived nodes (A owns the backends, exported as sink.a and echo.a; B is the entry
# node), the stock ssh client, the same cipher and backends as bench/run.sh.
#
#   bench/fleet.sh [--quick] [FIVED_BINARY]     (bench/run.sh runs it last)
#
# Figures, each as direct (client -> A), relayed (client -> B -> A) and their ratio:
#   upload MB/s      BYTES zeros through `ssh -W` to the sink, counted there
#   channel open ms  sequential `ssh -S ctl -W echo` through one ControlMaster, one byte each way
# Environment: FIVED_BENCH_BYTES, FIVED_BENCH_ROUNDS, FIVED_BENCH_OPENS as bench/run.sh.
# Needs etcd (Debian's etcd-server); prints a note and exits 0 without it.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mode=full
[[ ${1:-} == --quick ]] && { mode=quick; shift; }
fived_bin=${1:-$repo/.build-bench/release/fived}
if [[ $mode == quick ]]; then
    bytes=${FIVED_BENCH_BYTES:-$((128 << 20))} rounds=${FIVED_BENCH_ROUNDS:-2} opens=${FIVED_BENCH_OPENS:-20}
else
    bytes=${FIVED_BENCH_BYTES:-$((1 << 30))} rounds=${FIVED_BENCH_ROUNDS:-5} opens=${FIVED_BENCH_OPENS:-50}
fi
say() { printf '%s\n' "bench fleet: $*" >&2; }
command -v etcd >/dev/null || { say "no etcd (apt-get install etcd-server): fleet figures skipped"; exit 0; }
[[ -x $fived_bin ]] || { say "no fived at $fived_bin"; exit 1; }

work=$(mktemp -d /tmp/fived-bench-fleet.XXXXXX)
# Started as root, fived reads peers_authorized_keys as its daemon_user (nobody)
# after dropping root: the folder must let it in (mktemp -d makes it 0700).
chmod 755 "$work"
started=()
cleanup() {
    local p
    for p in "${started[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null; done
    [[ ${FIVED_BENCH_KEEP:-0} == 1 ]] && say "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
source "$repo/bench/common.sh"
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "FAIL"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/client"
cp "$work/client.pub" "$work/authorized_keys"
for n in a b; do ssh-keygen -q -t ed25519 -N '' -C "node-$n" -f "$work/node_$n"; cat "$work/node_$n.pub" >>"$work/peers"; done
start_backends || { say "backends did not start"; exit 1; }
started+=($backends_pid)

etcd_port=$(free_port) etcd_peer=$(free_port)
etcd --name bench --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" --initial-cluster "bench=http://127.0.0.1:$etcd_peer" \
    --heartbeat-interval 50 --election-timeout 400 >"$work/etcd.log" 2>&1 &
started+=($!)
wait_for 20 grep -q "ready to serve client requests" "$work/etcd.log" || { say "etcd did not start"; exit 1; }

declare -A port
for n in a b; do
    port[$n]=$(free_port)
    services=""
    [[ $n == a ]] && services="
[services.sink]
connect = \"127.0.0.1:$sink_port\"
export = true
[services.echo]
connect = \"127.0.0.1:$echo_port\"
export = true"
    cat >"$work/$n.toml" <<EOT
listen = ["127.0.0.1:${port[$n]}"]
host_keys = ["$work/host_$n"]
authorized_keys = ["$work/authorized_keys"]
log_level = "warning"
$services
[cluster]
node_name = "$n"
etcd_endpoints = ["http://127.0.0.1:$etcd_port"]
node_key = "$work/node_$n"
peers_authorized_keys = "$work/peers"
EOT
    "$fived_bin" --config "$work/$n.toml" 2>>"$work/$n.log" &
    started+=($!)
done
wait_for 30 "${SSH[@]}" -p "${port[b]}" -o ControlMaster=no -W echo.a:1 127.0.0.1 </dev/null 2>/dev/null \
    || { say "the relay did not come up: $(tail -3 "$work/b.log")"; exit 1; }

# route NAME: "PORT SERVICE" for the direct (A) and relayed (B) paths.
route() { [[ $1 == direct ]] && echo "${port[a]} $2" || echo "${port[b]} $2.a"; }
upload() {  # upload direct|relayed
    local p s t0 t1
    read -r p s <<<"$(route "$1" sink)"
    : >"$work/sink.record"
    t0=$(now)
    head -c "$bytes" /dev/zero | timeout 600 "${SSH[@]}" -p "$p" -c aes128-gcm@openssh.com -W "$s:1" 127.0.0.1 || { echo FAIL; return; }
    t1=$(now)
    wait_for 10 test -s "$work/sink.record" && [[ $(cat "$work/sink.record") == "$bytes" ]] || { echo FAIL; return; }
    awk -v n="$bytes" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { printf "%.1f", n / s / 1e6 }'
}
MUX=(ssh -F /dev/null -o ControlMaster=no -o ProxyCommand=false -o LogLevel=ERROR)
open_time() {  # open_time direct|relayed
    local p s i t0 t1 out ctl="$work/ctl-$1"
    read -r p s <<<"$(route "$1" echo)"
    "${SSH[@]}" -p "$p" -o ControlMaster=yes -o ControlPath="$ctl" -N 127.0.0.1 &
    local master=$!
    started+=($master)
    wait_for 10 "${MUX[@]}" -S "$ctl" -O check mux 2>/dev/null || { echo FAIL; return; }
    printf x | "${MUX[@]}" -S "$ctl" -W "$s:1" mux >/dev/null   # the first relay dials the peer
    t0=$(now)
    for ((i = 0; i < opens; i++)); do
        out=$(printf x | timeout 30 "${MUX[@]}" -S "$ctl" -W "$s:1" mux) && [[ $out == x ]] || { kill "$master"; echo FAIL; return; }
    done
    t1=$(now)
    kill "$master" 2>/dev/null
    awk -v n="$opens" -v s="$(elapsed "$t0" "$t1")" 'BEGIN { printf "%.2f", s * 1000 / n }'
}

declare -A V
for ((r = 1; r <= rounds; r++)); do
    order=(direct relayed)
    ((r % 2 == 0)) && order=(relayed direct)
    for path in "${order[@]}"; do
        V[up-$path]+=" $(upload "$path")"
        V[open-$path]+=" $(open_time "$path")"
    done
    say "round $r: upload direct ${V[up-direct]##* } relayed ${V[up-relayed]##* } MB/s; open direct ${V[open-direct]##* } relayed ${V[open-relayed]##* } ms"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "FAIL" || b == "FAIL" || a == 0) print "FAIL"; else printf "%.2f", b / a }'; }
{
    echo
    echo "relayed through two fived nodes vs direct ($mode: $rounds rounds, $((bytes >> 20)) MiB, $opens opens; $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores)"
    printf '%-58s %10s %10s %8s\n' figure direct relayed ratio
    # shellcheck disable=SC2086
    ud=$(median ${V[up-direct]}) ur=$(median ${V[up-relayed]}) od=$(median ${V[open-direct]}) or=$(median ${V[open-relayed]})
    printf '%-58s %10s %10s %8s\n' "upload MB/s (aes128-gcm)" "$ud" "$ur" "$(ratio "$ud" "$ur")"
    printf '%-58s %10s %10s %8s\n' "channel open time ms (mux, one byte each way)" "$od" "$or" "$(ratio "$od" "$or")"
    echo "(medians over rounds; ratio = relayed / direct; the relayed path is client -> B -> A -> backend, all on this machine)"
}

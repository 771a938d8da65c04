#!/usr/bin/env bash
# Instructions fived executes (user space, callgrind) per GiB moved or per
# channel opened, for comparing two builds on a busy machine: instruction
# counts do not move with the load, wall time does.
#
#   bench/instructions.sh FIVED up|down [BYTES]     per GiB (default 64 MiB moved)
#   bench/instructions.sh FIVED opens [N]           per channel (default 100 opens)
#
# Each figure is the difference of two whole runs of FIVED under valgrind's
# callgrind: one that moves BYTES (through `ssh -W` to a counting sink, or
# from a source sending BYTES) or opens N channels over one ControlMaster
# (`-W echo:1`, one byte each way, closed), minus one that does the same
# start, wait-for-ready probe (and master connection) and stop without them.
# So start-up and the handshake cancel out, and no profiler has to attach to a
# running fived (callgrind_control cannot reach a fived that dropped root: its
# FIFOs stay root's). FIVED is a binary of any version (flags only, no config file), run
# as this user; its debug information is stripped first (valgrind 3.19 cannot
# read Swift 6's DWARF 5), its symbols kept. With FIVED_INSTRUCTIONS_KEEP=DIR the
# two callgrind files are copied there (`callgrind_annotate DIR/with` lists
# where the instructions went).
#
# Example (issue 12's before/after in docs/performance.md):
#   bench/instructions.sh /tmp/old/.build-bench/release/fived down
#   bench/instructions.sh .build-bench/release/fived down
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

binary=${1:-} what=${2:-}
case $what in
    up | down) amount=${3:-$((64 << 20))} ;;
    opens) amount=${3:-100} ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
esac
[[ -x $binary ]] || { echo "instructions.sh: no fived at $binary" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }

work=$(mktemp -d /tmp/fived-instructions.XXXXXX)
# Started as root, fived becomes nobody and must still write callgrind's file.
chmod 1777 "$work"
source "$repo/bench/common.sh"
trap stop_and_remove_work EXIT

strip --strip-debug -o "$work/fived" "$binary"
ssh-keygen -q -t ed25519 -N '' -f "$work/client"
cp "$work/client.pub" "$work/authorized_keys"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
start_backends "$amount" || { echo "instructions.sh: backends did not start" >&2; exit 1; }
pids+=($backends_pid)

# run AMOUNT: one whole run of fived doing AMOUNT of the work; prints its instruction total.
run() {
    local amount=$1 port out vpid
    port=$(free_port) out="$work/cg.$port"
    install -m 0666 /dev/null "$out"  # made before the drop, written after it
    valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no "$work/fived" \
        --listen "127.0.0.1:$port" --host-key "$work/host_key" --authorized-keys "$work/authorized_keys" \
        --service "sink=tcp:127.0.0.1:$sink_port" --service "echo=tcp:127.0.0.1:$echo_port" \
        --service "source=tcp:127.0.0.1:${source_port:-$echo_port}" --log-level warning 2>"$work/fived.$port.log" &
    vpid=$!
    local ssh=("${SSH[@]}" -p "$port" -c aes128-gcm@openssh.com)
    wait_for 120 "${ssh[@]}" -W echo:1 127.0.0.1 </dev/null 2>/dev/null \
        || { echo "instructions.sh: fived did not start: $(tail -3 "$work/fived.$port.log")" >&2; kill "$vpid"; return 1; }
    case $what in
        up) ((amount == 0)) || head -c "$amount" /dev/zero | "${ssh[@]}" -W sink:1 127.0.0.1 ;;
        down) ((amount == 0)) || [[ $("${ssh[@]}" -W source:1 127.0.0.1 </dev/null | wc -c) == "$amount" ]] || echo "instructions.sh: short download" >&2 ;;
        opens)
            # The master's own connection is in both runs: only the opens differ.
            "${ssh[@]}" -S "$work/ctl.$port" -M -N -f 127.0.0.1
            local i
            for ((i = 0; i < amount; i++)); do
                [[ $(echo x | "${ssh[@]}" -S "$work/ctl.$port" -W echo:1 127.0.0.1) == x ]] || echo "instructions.sh: open $i failed" >&2
            done
            "${ssh[@]}" -S "$work/ctl.$port" -O exit 127.0.0.1 2>/dev/null
            ;;
    esac
    kill -TERM "$vpid"
    wait "$vpid"
    awk '/^totals:/ { print $2 }' "$out"
}

keep=${FIVED_INSTRUCTIONS_KEEP:-}
base=$(run 0) || exit 1
[[ -n $keep ]] && { mkdir -p "$keep"; cp "$work"/cg.* "$keep/base"; rm -f "$work"/cg.*; }
with=$(run "$amount") || exit 1
[[ -n $keep ]] && cp "$work"/cg.* "$keep/with"
[[ -n $base && -n $with ]] || { echo "instructions.sh: callgrind wrote no totals" >&2; exit 1; }
case $what in
    up | down) awk -v a="$base" -v b="$with" -v n="$amount" -v w="$what" \
        'BEGIN { printf "%s: %.3f G instructions per GiB (%d bytes; runs %d and %d)\n", w, (b - a) / n * 1073741824 / 1e9, n, a, b }' ;;
    opens) awk -v a="$base" -v b="$with" -v n="$amount" \
        'BEGIN { printf "opens: %.0f k instructions per channel (%d opens; runs %d and %d)\n", (b - a) / n / 1000, n, a, b }' ;;
esac

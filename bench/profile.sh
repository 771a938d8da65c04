#!/usr/bin/env bash
# One transfer through a fresh fived, for profiling the data path: prints MB/s
# and fived's CPU seconds per GiB, and can attach a profiler to fived meanwhile.
#
#   bench/profile.sh up|down [CIPHER] [BYTES] [-- PROFILER ARGS...]
#   bench/profile.sh up|down [CIPHER] [BYTES] --callgrind OUT
#
#   up    BYTES of zeros through `ssh -W sink:1` into a counting sink
#   down  BYTES from an exec service (`head -c BYTES /dev/zero`) through `ssh HOST src`
#         (with --callgrind: from a socket backend through `ssh -W source:1`)
#   CIPHER  default aes128-gcm@openssh.com;  BYTES  default 1073741824 (1 GiB)
#   PROFILER  run as `PROFILER ARGS... -p FIVED_PID` for the transfer, then sent
#             SIGINT; for example:
#     bench/profile.sh up -- perf record -F 1999 -g -o /tmp/up.data
#     bench/profile.sh down -- strace -c -f -o /tmp/down.strace
#     bench/profile.sh up -- perf stat -e 'syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto' -o /tmp/up.stat
#   --callgrind OUT  runs fived under valgrind's callgrind (instructions counted
#             in user space, repeatable on a busy machine; the kernel's side of
#             system calls is not counted), zeroes the counts just before the
#             transfer and dumps them just after: prints instructions per GiB,
#             and writes the annotated profile to OUT (OUT.raw: callgrind's file).
#             Use 256 MiB or less: callgrind runs fived ~50x slower.
#
# Uses the fived that bench/run.sh builds ($FIVED_SCRATCH, default .build-bench:
# `swift build -c release --scratch-path .build-bench --product fived`) and the
# same backends and client options (FIVED_BIN: another fived binary). Loopback only; everything it starts is
# stopped on exit. CPU time includes reaped children (the `head` of downloads).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

direction=${1:-}
case $direction in up | down) shift ;; *) sed -n '2,20p' "$0"; exit 2 ;; esac
cipher=aes128-gcm@openssh.com bytes=$((1 << 30))
if [[ ${1:-} != -- && -n ${1:-} ]]; then cipher=$1; shift; fi
if [[ ${1:-} != -- && -n ${1:-} ]]; then bytes=$1; shift; fi
callgrind_out=
if [[ ${1:-} == --callgrind ]]; then callgrind_out=${2:?--callgrind needs a file}; shift 2; fi
# Started as root, fived becomes nobody: callgrind_control can no longer reach it
# (valgrind made its FIFOs as root), and --zero would wait forever.
if [[ -n $callgrind_out && $(id -u) == 0 ]]; then
    echo "profile.sh: --callgrind needs a user other than root (fived started as root drops to nobody, out of callgrind_control's reach); bench/instructions.sh counts as root" >&2
    exit 2
fi
[[ ${1:-} == -- ]] && shift
profiler=("$@")

fived_bin=${FIVED_BIN:-$repo/${FIVED_SCRATCH:-.build-bench}/release/fived}
[[ -x $fived_bin ]] || { echo "profile.sh: no fived at $fived_bin (build it as above)" >&2; exit 1; }
for tool in ssh ssh-keygen python3; do
    command -v "$tool" >/dev/null || { echo "profile.sh: needs $tool" >&2; exit 1; }
done

work=$(mktemp -d /tmp/fived-profile.XXXXXX)
# free_port, wait_for, start_backends, stop_and_remove_work and the benchmark's client options (SSH).
source "$repo/bench/common.sh"
trap stop_and_remove_work EXIT
ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }

ssh-keygen -q -t ed25519 -N '' -f "$work/client"
cp "$work/client.pub" "$work/authorized_keys"
start_backends "$bytes"; rc=$?
pids+=($backends_pid)
((rc == 0)) || { echo "profile.sh: backends did not start" >&2; exit 1; }
port=$(free_port)

under=()
if [[ -n $callgrind_out ]]; then
    command -v valgrind >/dev/null || { echo "profile.sh: --callgrind needs valgrind (apt-get install valgrind)" >&2; exit 1; }
    # valgrind 3.19 cannot read the DWARF 5 that Swift 6 writes: a copy without
    # debug sections (symbols kept) is profiled instead.
    cp "$fived_bin" "$work/fived" && strip --strip-debug "$work/fived" && fived_bin=$work/fived || exit 1
    under=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" --dump-instr=no --separate-threads=no)
fi
# The exec service runs as this script's user (as sshd runs a command as the user logged in).
printf '[services.src]\nexec = ["/usr/bin/head", "-c", "%s", "/dev/zero"]\nuser = "%s"\n' "$bytes" "$(id -un)" >"$work/fived.toml"
"${under[@]}" "$fived_bin" --config "$work/fived.toml" --listen "127.0.0.1:$port" --host-key "$work/host_key" \
    --authorized-keys "$work/authorized_keys" --service "sink=tcp:127.0.0.1:$sink_port" --service "echo=tcp:127.0.0.1:$echo_port" \
    --service "source=tcp:127.0.0.1:$source_port" --log-level warning 2>"$work/fived.log" &
fived_pid=$!
pids+=($fived_pid)
SSH+=(-p "$port")
wait_for $((${#under[@]} ? 120 : 20)) "${SSH[@]}" -W echo:1 127.0.0.1 </dev/null 2>/dev/null \
    || { echo "profile.sh: fived did not start: $(tail -3 "$work/fived.log")" >&2; exit 1; }

profiler_pid=
if ((${#profiler[@]})); then
    "${profiler[@]}" -p "$fived_pid" &
    profiler_pid=$!
    sleep 1   # let it attach
fi
if [[ -n $callgrind_out ]]; then callgrind_control --zero "$fived_pid" >/dev/null || exit 1; fi
c0=$(ticks "$fived_pid")
t0=$EPOCHREALTIME
if [[ $direction == up ]]; then
    head -c "$bytes" /dev/zero | "${SSH[@]}" -c "$cipher" -W sink:1 127.0.0.1
    t1=$EPOCHREALTIME
    wait_for 10 test -s "$work/sink.record"
    got=$(cat "$work/sink.record")
elif [[ -n $callgrind_out ]]; then
    # Under valgrind the download comes from a socket backend through the same
    # pump (an exec service's program would be the spawner's child, outside the profile).
    got=$("${SSH[@]}" -c "$cipher" -W source:1 127.0.0.1 </dev/null | wc -c)
    t1=$EPOCHREALTIME
else
    got=$("${SSH[@]}" -n -c "$cipher" 127.0.0.1 src | wc -c)
    t1=$EPOCHREALTIME
    wait_for 10 test -z "$(pgrep -P "$fived_pid")"   # the child reaped: its CPU is counted
fi
c1=$(ticks "$fived_pid")
if [[ -n $callgrind_out ]]; then
    callgrind_control --dump=transfer "$fived_pid" >/dev/null || exit 1
    dump=$(ls -t "$work"/cg.out.* | head -1)
    cp "$dump" "$callgrind_out.raw"
    python3 "$repo/bench/callgrind_self.py" "$dump" memcpy_avx >"$callgrind_out"
    instructions=$(awk '/^summary:/ { print $2 }' "$dump")
fi
if [[ -n $profiler_pid ]]; then kill -INT "$profiler_pid" 2>/dev/null; wait "$profiler_pid" 2>/dev/null; fi
[[ $got == "$bytes" ]] || { echo "profile.sh: moved $got of $bytes bytes" >&2; exit 1; }
awk -v d="$direction" -v c="$cipher" -v n="$bytes" -v a="$t0" -v b="$t1" -v k=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%s %s %d MiB: %.1f MB/s, fived CPU %.2f s/GiB\n", d, c, n / 1048576, n / (b - a) / 1e6, k / hz / (n / 1073741824) }'
if [[ -n $callgrind_out ]]; then
    awk -v i="$instructions" -v n="$bytes" 'BEGIN { printf "callgrind: %.3f G instructions per GiB (fived only, user space: children and the kernel not included)\n", i / 1e9 / (n / 1073741824) }'
fi

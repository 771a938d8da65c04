#!/usr/bin/env bash
# The hostile mix beside well-behaved traffic (not part of the default test run):
# builds fived (release) and runs bench/isolation.py against it on loopback for
# ISOLATION_SECONDS (default 30): black-holed and stalled backends, tiny-max-packet
# channels, protocol violators, bursts of 100 clients, an idle flood of 300
# connections and clients killed at random, beside four well-behaved clients
# whose echo round trips and bytes are measured. Prints a JSON report (round-trip
# percentiles, bytes checked and lost, fived's CPU seconds, memory, descriptors and
# children before and after) and exits 0 when nothing well-behaved suffered.
#
# Environment: FIVED_BIN (use this binary instead of building), ISOLATION_SECONDS,
# ISOLATION_SEED. Needs Debian's python3 with python3-paramiko, openssh-client.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n ${FIVED_BIN:-} ]]; then
    fived=$FIVED_BIN
else
    swift build -c release --scratch-path .build-bench --product fived >&2
    fived=$(swift build -c release --scratch-path .build-bench --show-bin-path)/fived
fi
seed=()
[[ -n ${ISOLATION_SEED:-} ]] && seed=(--seed "$ISOLATION_SEED")
ulimit -n 65536 2>/dev/null || true
exec /usr/bin/python3 bench/isolation.py "$fived" --duration "${ISOLATION_SECONDS:-30}" "${seed[@]}"

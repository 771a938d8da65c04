#!/usr/bin/env bash
# Soak test (not part of the default test run): builds fived and runs bench/soak.py
# against it on loopback for SOAK_SECONDS (default 180) with SOAK_CONCURRENCY
# clients at once (default 12). Thousands of connections and channels, clients,
# multiplexing masters and a TCP backend killed at random, garbage connections;
# at the end fived's descriptors, threads, children and memory must be back near
# their warm-up values and every echoed byte must match. Exit 0 when all holds.
#
# Environment: FIVED_SCRATCH (build folder, default .build), FIVED_BIN (use this
# binary instead of building), SOAK_SECONDS, SOAK_CONCURRENCY, SOAK_SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n ${FIVED_BIN:-} ]]; then
    fived=$FIVED_BIN
else
    scratch=(--scratch-path "${FIVED_SCRATCH:-.build}")
    swift build "${scratch[@]}" --product fived >&2
    fived=$(swift build "${scratch[@]}" --show-bin-path)/fived
fi
seed=()
[[ -n ${SOAK_SEED:-} ]] && seed=(--seed "$SOAK_SEED")
exec python3 bench/soak.py "$fived" --duration "${SOAK_SECONDS:-180}" --concurrency "${SOAK_CONCURRENCY:-12}" "${seed[@]}"

#!/usr/bin/env bash
# Builds the libFuzzer harnesses in fuzz/*.swift against FivedCore and runs each.
#
#   bash fuzz/run.sh [SECONDS] [HARNESS...]     # default: 60 s each, every harness
#
# FivedCore and its dependencies (TOMLKit/toml++, swift-crypto) are built by SwiftPM
# in .build-fuzz with AddressSanitizer and libFuzzer's coverage instrumentation;
# each harness is then compiled with `swiftc -sanitize=fuzzer,address
# -parse-as-library` and linked with those objects, so the package itself gains no
# target and a plain `swift build` is unaffected.
#
# Corpora: fuzz/corpus/NAME/ is the committed seed corpus (read only here); new
# inputs go to .build-fuzz/corpus/NAME/, crashes to .build-fuzz/crashes/NAME/.
# Environment: FUZZ_CONFIGURATION (debug|release, default release).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true
scratch=$root/.build-fuzz
configuration=${FUZZ_CONFIGURATION:-release}

harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
    for f in fuzz/*.swift; do harnesses+=("$(basename "$f" .swift)"); done
fi

echo "fuzz: building FivedCore with -sanitize=fuzzer,address ($configuration)" >&2
swift build --scratch-path "$scratch" -c "$configuration" --target FivedCore \
    -Xswiftc -sanitize=fuzzer,address \
    -Xcc -fsanitize=fuzzer-no-link,address -Xcxx -fsanitize=fuzzer-no-link,address >&2
bin=$scratch/$configuration
modules=$bin/Modules
[[ -d $modules ]] || modules=$bin
# The objects of FivedCore and of what it depends on, and the C modules they import.
deps=(FivedCore TOMLKit CTOML Crypto _CryptoExtras SwiftASN1 CryptoBoringWrapper CCryptoBoringSSL CCryptoBoringSSLShims)
objects=()
for dep in "${deps[@]}"; do
    mapfile -t -O "${#objects[@]}" objects < <(find "$bin/$dep.build" -name '*.o' | sort)
done
includes=(-Xcc "-fmodule-map-file=$bin/CTOML.build/module.modulemap")
for c in CCryptoBoringSSL CCryptoBoringSSLShims; do
    includes+=(-I "$scratch/checkouts/swift-crypto/Sources/$c/include")
done

mkdir -p "$scratch/fuzzers"
for name in "${harnesses[@]}"; do
    echo "fuzz: linking $name" >&2
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
        -module-name "Fuzz_$name" -I "$modules" "${includes[@]}" \
        "fuzz/$name.swift" "${objects[@]}" -lstdc++ -o "$scratch/fuzzers/$name" 2>&1 \
        | { grep -v "Cannot export local symbol" || true; } >&2
done

status=0
for name in "${harnesses[@]}"; do
    corpus=$scratch/corpus/$name
    crashes=$scratch/crashes/$name
    mkdir -p "$corpus" "$crashes" "fuzz/corpus/$name"
    echo "fuzz: running $name for $seconds s" >&2
    log=$scratch/$name.log
    extra=()
    asan=${ASAN_OPTIONS:-}
    # TOMLKit 0.6.0 leaks the strings of every parse (tableGetKeys, nodeAsString,
    # TOMLTable(string:)); leak checks would stop the config fuzzer at its first input,
    # and LeakSanitizer's check at exit would fail the run.
    if [[ $name == config ]]; then
        extra+=(-detect_leaks=0)
        asan=${asan:+$asan:}detect_leaks=0
    fi
    if ! ASAN_OPTIONS=$asan "$scratch/fuzzers/$name" "$corpus" "fuzz/corpus/$name" "${extra[@]}" \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1; then
        echo "fuzz: $name FOUND A PROBLEM: see $log and $crashes/" >&2
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}' || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz: $name: $execs executions in $seconds s, $cov, corpus $(ls "$corpus" | wc -l) inputs" >&2
done
exit $status

#!/usr/bin/env bash
# Builds fived and runs every test suite: FivedCoreTests (policy, no sockets) and
# IntegrationTests (the built fived driven by the stock OpenSSH client).
#
# Installs what the build and the tests need when it is missing and we are root:
# libssh-dev and pkg-config (the SSH transport), openssh-client (ssh, ssh-keygen,
# ssh-agent, ssh-add: the integration tests' client), socat; for the recipe and systemd
# tests (examples/), git, curl, python3, openssh-server (sshd) and systemd
# (systemd-analyze), groff-base (the man page check); python3-prometheus-client (the
# metrics test's parser); python3-fusepy (a FUSE file system that hangs reads); for the package test, dpkg-dev,
# binutils, lintian and debootstrap; etcd-server (the fleet tests). Quiet when all is there.
#
# Environment:
#   FIVED_SCRATCH   build folder (swift --scratch-path), default .build
#   FIVED_TEST_ARGS extra arguments for `swift test` (e.g. "--filter Channel")
# Exit status: swift test's.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists libssh 2>/dev/null; then missing+=(libssh-dev); fi
for tool in ssh ssh-keygen ssh-agent ssh-add; do
    if ! command -v "$tool" >/dev/null 2>&1; then missing+=(openssh-client); break; fi
done
for tool in sha256sum head tr; do
    if ! command -v "$tool" >/dev/null 2>&1; then missing+=(coreutils); break; fi
done
# fived-connect's tests drive local sockets with socat.
command -v socat >/dev/null 2>&1 || missing+=(socat)
# The recipes run the real programs; the tests skip (saying why) when one is absent.
optional=()
[[ -x /usr/bin/git ]] || optional+=(git)
[[ -x /usr/bin/curl ]] || optional+=(curl)
[[ -x /usr/bin/python3 ]] || optional+=(python3)
[[ -x /usr/sbin/sshd ]] || optional+=(openssh-server)
command -v systemd-analyze >/dev/null 2>&1 || optional+=(systemd)
[[ -x /usr/bin/groff ]] || optional+=(groff-base)
# PackageTests: scripts/package.sh (dpkg-dev, binutils, lintian) and a debootstrap chroot.
command -v dpkg-shlibdeps >/dev/null 2>&1 || optional+=(dpkg-dev)
command -v readelf >/dev/null 2>&1 || optional+=(binutils)
command -v lintian >/dev/null 2>&1 || optional+=(lintian)
command -v debootstrap >/dev/null 2>&1 || optional+=(debootstrap)
# The client matrix (docs/clients.md): each client's tests skip, saying why, without it.
[[ -x /usr/bin/plink && -x /usr/bin/puttygen ]] || optional+=(putty-tools)
[[ -x /usr/bin/dbclient && -x /usr/bin/dropbearconvert ]] || optional+=(dropbear-bin)
[[ -f /usr/lib/python3/dist-packages/paramiko/__init__.py ]] || optional+=(python3-paramiko)
[[ -f /usr/lib/python3/dist-packages/asyncssh/__init__.py ]] || optional+=(python3-asyncssh)
[[ -x /usr/bin/go ]] || optional+=(golang-go)
[[ -f /usr/share/gocode/src/golang.org/x/crypto/ssh/client.go ]] || optional+=(golang-golang-x-crypto-dev)
# MetricsTests parse the Prometheus exposition with prometheus_client's own parser.
[[ -f /usr/lib/python3/dist-packages/prometheus_client/__init__.py ]] || optional+=(python3-prometheus-client)
# IsolationTests mount a FUSE file system (fusepy) whose reads never answer.
[[ -f /usr/lib/python3/dist-packages/fusepy.py ]] || optional+=(python3-fusepy)
# The fleet tests (FleetTests) start a real etcd; they skip, saying why, without it.
command -v etcd >/dev/null 2>&1 || optional+=(etcd-server)
if ((${#optional[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        missing+=("${optional[@]}")
    else
        echo "test.sh: the recipe and client matrix tests will skip without ${optional[*]} (sudo apt-get install ${optional[*]})" >&2
    fi
fi

# shellcheck source=scripts/packages.sh
source scripts/packages.sh
install_packages test.sh "${missing[@]}"

# The code's layout: swift-format (shipped with the toolchain) with .swift-format;
# `swift format format -i -r Sources Tests fuzz Package.swift` fixes what it finds.
if ! lint=$(swift format lint --strict -r Sources Tests fuzz Package.swift 2>&1) || [[ -n $lint ]]; then
    printf '%s\n' "$lint" | head -20 >&2
    echo "test.sh: swift format lint found the above; run: swift format format -i -r Sources Tests fuzz Package.swift" >&2
    exit 1
fi

scratch=(--scratch-path "${FIVED_SCRATCH:-.build}")
swift build "${scratch[@]}" --build-tests
# The integration tests find fived beside the test runner (the same build folder).
if [[ -n ${FIVED_TEST_ARGS:-} ]]; then
    # shellcheck disable=SC2086
    exec swift test "${scratch[@]}" --skip-build $FIVED_TEST_ARGS
fi
# The Debian package test makes a release build with the Swift runtime linked in
# (minutes of both cores): run beside the timing-sensitive suites it starves
# them, so it runs after them, alone.
swift test "${scratch[@]}" --skip-build --skip 'IntegrationTests.PackageTests'
exec swift test "${scratch[@]}" --skip-build --filter 'IntegrationTests.PackageTests'


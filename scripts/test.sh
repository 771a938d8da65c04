#!/usr/bin/env bash
# Builds fived and runs every test suite: FivedCoreTests (policy, no sockets) and
# IntegrationTests (the built fived driven by the stock OpenSSH client).
#
# Installs what the build and the tests need when it is missing and we are root:
# libssh-dev and pkg-config (the SSH transport), openssh-client (ssh, ssh-keygen,
# ssh-agent, ssh-add: the integration tests' client), socat; for the recipe and systemd
# tests (examples/), git, curl, python3, openssh-server (sshd) and systemd
# (systemd-analyze), groff-base (the man page check), etcd-server (the fleet tests). Quiet when all is there.
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
# The fleet tests (FleetTests) start a real etcd; they skip, saying why, without it.
command -v etcd >/dev/null 2>&1 || optional+=(etcd-server)
# Raw SSH peers (PeerParameterTests) speak through paramiko, with Debian's python3.
/usr/bin/python3 -c 'import paramiko' >/dev/null 2>&1 || optional+=(python3-paramiko)
if ((${#optional[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        missing+=("${optional[@]}")
    else
        echo "test.sh: the recipe tests will skip without ${optional[*]} (sudo apt-get install ${optional[*]})" >&2
    fi
fi

# shellcheck source=scripts/packages.sh
source scripts/packages.sh
install_packages test.sh "${missing[@]}"

scratch=(--scratch-path "${FIVED_SCRATCH:-.build}")
swift build "${scratch[@]}" --build-tests
# The integration tests find fived beside the test runner (the same build folder).
# shellcheck disable=SC2086
exec swift test "${scratch[@]}" --skip-build ${FIVED_TEST_ARGS:-}

# Shared by bench/run.sh, profile.sh, instructions.sh and fleet.sh (sourced, not
# run): the helpers and the client options they use, so a profile measures what
# the benchmark does. Expects $repo (the checkout) and $work (a scratch folder) to be set.

# stop_and_remove_work: kills the processes in $pids, waits for them and removes
# $work (for `trap stop_and_remove_work EXIT`).
pids=()
stop_and_remove_work() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for SECONDS COMMAND...: polls the command every 50 ms until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.05; done
}

# start_backends [SOURCE_BYTES]: the sink (counts what it receives into
# $work/sink.record) and the echo service on free loopback ports, and with
# SOURCE_BYTES a source sending that many bytes per connection; sets sink_port,
# echo_port, source_port and backends_pid. Returns 1 if they do not come up.
start_backends() {
    sink_port=$(free_port) echo_port=$(free_port) source_port=
    local source=()
    [[ -n ${1:-} ]] && { source_port=$(free_port); source=("$source_port" "$1"); }
    python3 "$repo/bench/backends.py" "$sink_port" "$echo_port" "$work/sink.record" "${source[@]}" >"$work/backends.out" 2>&1 &
    backends_pid=$!
    wait_for 10 grep -q ready "$work/backends.out"
}

# The client for every measurement: no config, no agent, the key in
# $work/client, and the key exchange and host key type both servers offer
# (OpenSSH 9.2 would otherwise pick sntrup761x25519 with sshd, which libssh lacks).
SSH=(ssh -F /dev/null -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR
     -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o ConnectTimeout=10
     -o KexAlgorithms=curve25519-sha256 -o HostKeyAlgorithms=ssh-ed25519 -i "$work/client" -l root)

#!/usr/bin/python3
"""One channel to a fived service through paramiko, for the client matrix
(Tests/IntegrationTests/ClientMatrixTests.swift).

    paramiko_client.py --port P --user U --key FILE --form FORM --service NAME [--input FILE]
    paramiko_client.py --version

FORM is direct-tcpip (open_channel('direct-tcpip', (NAME, 1), ...)), exec (NAME as
the command) or subsystem (NAME as the subsystem). The bytes of --input (none
without it) are sent, then EOF (shutdown_write), while everything the channel
carries is copied to stdout and its extended data (stderr) to stderr. The host key
is accepted whatever it is (AutoAddPolicy into a throw-away store).

The last stderr line says how the channel ended, for the test to read:
    fived-client result: exit-status=N | exit-signal=NAME | none
An open failure prints "fived-client open-failed: REASON" and exits 2; any other
error exits 1. paramiko keeps no exit-signal (it answers every request it does not
know with a failure and drops it), so the request is read as it passes.
"""
import sys
import threading

import paramiko

from matrix_client import CHUNK, arguments, chunks, open_failed, report, send_stopped


def watch_exit_signal():
    """Records the signal name of an exit-signal request on the channel."""
    original = paramiko.Channel._handle_request

    def handle(self, message):
        start = message.packet.tell()
        if message.get_text() == "exit-signal":
            message.get_boolean()
            self.fived_exit_signal = message.get_text()
        message.packet.seek(start)
        return original(self, message)

    # The transport dispatches through its own table, filled when the class was made.
    table = paramiko.Transport._channel_handler_table
    table[paramiko.common.MSG_CHANNEL_REQUEST] = handle


def send(channel, path):
    try:
        for chunk in chunks(path):
            channel.sendall(chunk)
        channel.shutdown_write()
    except OSError as error:  # the service went away first: its output says what happened
        send_stopped(error)


def copy(read, sink):
    while True:
        chunk = read(CHUNK)
        if not chunk:
            break
        sink.write(chunk)
    sink.flush()


def main():
    args = arguments()
    if args.version:
        print(f"paramiko {paramiko.__version__}")
        return 0

    watch_exit_signal()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    key = paramiko.Ed25519Key.from_private_key_file(args.key)
    client.connect(
        "127.0.0.1", port=args.port, username=args.user, pkey=key,
        look_for_keys=False, allow_agent=False, timeout=30)
    transport = client.get_transport()
    try:
        if args.form == "direct-tcpip":
            channel = transport.open_channel("direct-tcpip", (args.service, 1), ("127.0.0.1", 0))
        else:
            channel = transport.open_session()
            if args.form == "exec":
                channel.exec_command(args.service)
            else:
                channel.invoke_subsystem(args.service)
    except (paramiko.ChannelException, paramiko.SSHException) as error:
        return open_failed(error)

    sender = threading.Thread(target=send, args=(channel, args.input))
    errors = threading.Thread(target=copy, args=(channel.recv_stderr, sys.stderr.buffer))
    sender.start()
    errors.start()
    copy(channel.recv, sys.stdout.buffer)
    errors.join()
    sender.join()
    status = channel.recv_exit_status()
    signal = getattr(channel, "fived_exit_signal", None)
    if signal is not None:
        outcome = f"exit-signal={signal}"
    elif status >= 0 and args.form != "direct-tcpip":
        outcome = f"exit-status={status}"
    else:
        outcome = "none"
    report(outcome)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

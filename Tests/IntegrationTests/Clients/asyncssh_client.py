#!/usr/bin/python3
"""One channel to a fived service through asyncssh, for the client matrix
(Tests/IntegrationTests/ClientMatrixTests.swift).

    asyncssh_client.py --port P --user U --key FILE --form FORM --service NAME [--input FILE]
    asyncssh_client.py --version

FORM is direct-tcpip (conn.open_connection(NAME, 1)), exec (NAME as the command)
or subsystem (NAME as the subsystem). The bytes of --input (none without it) are
sent, then EOF (write_eof), while everything the channel carries is copied to
stdout and its stderr to stderr. known_hosts=None: no host key check.

The last stderr line says how the channel ended, for the test to read:
    fived-client result: exit-status=N | exit-signal=NAME | none
An open failure prints "fived-client open-failed: REASON" and exits 2; any other
error exits 1.
"""
import asyncio
import sys
import warnings

warnings.simplefilter("ignore")  # Debian's cryptography warns about ciphers asyncssh merely names
import asyncssh  # noqa: E402

from matrix_client import CHUNK, arguments, chunks, open_failed, report, send_stopped  # noqa: E402


async def send(writer, path):
    try:
        for chunk in chunks(path):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
    except (OSError, asyncssh.Error) as error:  # the service went away first
        send_stopped(error)


async def copy(reader, sink):
    while True:
        chunk = await reader.read(CHUNK)
        if not chunk:
            break
        sink.write(chunk)
    sink.flush()


async def run(args):
    async with asyncssh.connect(
        "127.0.0.1", args.port, username=args.user, client_keys=[args.key],
        known_hosts=None, agent_path=None, config=[],
    ) as conn:
        try:
            if args.form == "direct-tcpip":
                reader, writer = await conn.open_connection(args.service, 1)
                await asyncio.gather(send(writer, args.input), copy(reader, sys.stdout.buffer))
                report("none")
                return 0
            if args.form == "exec":
                process = await conn.create_process(args.service, encoding=None)
            else:
                process = await conn.create_process(subsystem=args.service, encoding=None)
        except asyncssh.ChannelOpenError as error:
            return open_failed(f"code {error.code}: {error.reason}")
        await asyncio.gather(
            send(process.stdin, args.input),
            copy(process.stdout, sys.stdout.buffer),
            copy(process.stderr, sys.stderr.buffer),
        )
        completed = await process.wait(check=False)
        if completed.exit_signal:
            outcome = f"exit-signal={completed.exit_signal[0]}"
        elif completed.exit_status is not None and completed.exit_status >= 0:
            outcome = f"exit-status={completed.exit_status}"
        else:
            outcome = "none"
        report(outcome)
        return 0


def main():
    args = arguments()
    if args.version:
        print(f"asyncssh {asyncssh.__version__}")
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

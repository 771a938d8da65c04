"""What the client matrix's Python drivers (paramiko_client.py, asyncssh_client.py)
share: their command line, the input they send, and the lines they end stderr with
(Tests/IntegrationTests/Harness/MatrixClient.swift reads them).

    DRIVER --port P --user U --key FILE --form FORM --service NAME [--input FILE]
    DRIVER --version
"""
import argparse
import sys

RESULT = "fived-client result: "
CHUNK = 65536


def arguments():
    """The driver's parsed command line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--user")
    parser.add_argument("--key")
    parser.add_argument("--form", choices=["direct-tcpip", "exec", "subsystem"])
    parser.add_argument("--service")
    parser.add_argument("--input")
    return parser.parse_args()


def chunks(path):
    """The bytes of --input in pieces of CHUNK; none without it."""
    if not path:
        return
    with open(path, "rb") as source:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                return
            yield chunk


def report(outcome):
    """The last stderr line: exit-status=N, exit-signal=NAME or none."""
    print(RESULT + outcome, file=sys.stderr, flush=True)


def open_failed(reason):
    """Says the channel open failed; the driver then exits 2."""
    print(f"fived-client open-failed: {reason}", file=sys.stderr, flush=True)
    return 2


def send_stopped(error):
    """Says sending stopped because the service went away first."""
    print(f"fived-client send stopped: {error}", file=sys.stderr, flush=True)

#!/usr/bin/env python3
"""An HTTP service for fived that knows its callers without any login code.

fived (with proxy_protocol = true) sends a PROXY protocol v2 header before each
channel's bytes: the SSH client's address and the caller's service, user, key
fingerprint and key comment as TLVs 0xE0-0xE3 (docs/identity.md). This server
reads that header, logs one line per request naming the user, and greets them.

    whoami_http.py --unix /run/web/web.sock      # connect = "unix:/run/web/web.sock"
    whoami_http.py --tcp 127.0.0.1:8080          # connect = "127.0.0.1:8080"

Log lines (stderr): `request user=alice fingerprint=SHA256:... comment=alice@laptop
client=192.0.2.7:50312 service=web unique_id=42 method=GET path=/ status=200`.
A connection without a valid header is refused and logged: nothing reaches this
server except through fived.
"""
import argparse
import ipaddress
import os
import socketserver
import struct
import sys
from http.server import BaseHTTPRequestHandler

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
TLV_NAMES = {0x05: "unique_id", 0xE0: "service", 0xE1: "user", 0xE2: "fingerprint", 0xE3: "comment"}


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed inside the PROXY header")
        data += chunk
    return data


def read_proxy_v2(sock):
    """Reads one PROXY v2 header from `sock`; returns what it says as a dict."""
    head = read_exact(sock, 16)
    if head[:12] != SIGNATURE or head[12] != 0x21:
        raise ValueError("not a PROXY v2 header with command PROXY")
    family, length = head[13], struct.unpack("!H", head[14:16])[0]
    body = read_exact(sock, length)
    if family == 0x11:  # TCP over IPv4
        size, make = 4, ipaddress.IPv4Address
    elif family == 0x21:  # TCP over IPv6
        size, make = 16, ipaddress.IPv6Address
    else:
        raise ValueError(f"unexpected address family byte {family:#x}")
    source, destination = make(body[:size]), make(body[size:2 * size])
    sport, dport = struct.unpack("!HH", body[2 * size:2 * size + 4])
    info = {"client": f"{source}:{sport}", "fived": f"{destination}:{dport}"}
    i = 2 * size + 4
    while i + 3 <= len(body):
        kind, n = body[i], struct.unpack("!H", body[i + 1:i + 3])[0]
        info[TLV_NAMES.get(kind, f"tlv_{kind:#04x}")] = body[i + 3:i + 3 + n].decode("utf-8", "replace")
        i += 3 + n
    return info


def log(line):
    print(line, file=sys.stderr, flush=True)


def quoted(value):
    """A log value that cannot start a new line or fake a field."""
    text = str(value)
    if text and all(c.isprintable() and c not in ' ="\\' for c in text):
        return text
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "whoami_http/1"

    def setup(self):
        # The header comes first, before any HTTP: read it from the raw socket.
        self.identity = None
        try:
            self.identity = read_proxy_v2(self.request)
        except (ValueError, EOFError, OSError) as error:
            log(f"refused reason={quoted(error)}")
        super().setup()

    def handle(self):
        if self.identity is None:
            return  # no header, no service: the connection just closes
        super().handle()

    def address_string(self):
        return self.identity["client"] if self.identity else "-"

    def log_message(self, format, *args):
        pass  # one line per request, below, instead of the stock access log

    def do_GET(self):
        who = self.identity
        body = (f"hello {who.get('user', '?')}: you came from {who['client']} "
                f"with key {who.get('fingerprint', '?')} ({who.get('comment', '')}) "
                f"to service {who.get('service', '?')}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Fived-User", who.get("user", ""))
        self.end_headers()
        self.wfile.write(body)
        fields = " ".join(f"{key}={quoted(who.get(key, '-'))}"
                          for key in ("user", "fingerprint", "comment", "client", "service", "unique_id"))
        log(f"request {fields} method=GET path={quoted(self.path)} status=200")


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", metavar="PATH", help="listen on this Unix socket (replaced if it exists)")
    where.add_argument("--tcp", metavar="HOST:PORT", help="listen on this TCP address")
    options = parser.parse_args()
    if options.unix:
        if os.path.exists(options.unix):
            os.unlink(options.unix)
        server = UnixServer(options.unix, Handler)
        os.chmod(options.unix, 0o666)  # fived runs as its own user
        log(f"listening unix={options.unix}")
    else:
        host, _, port = options.tcp.rpartition(":")
        server = TCPServer((host.strip("[]"), int(port)), Handler)
        log(f"listening tcp={options.tcp}")
    server.serve_forever()


if __name__ == "__main__":
    main()

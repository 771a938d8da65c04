"""Logs in with a key and a certificate file exactly as given, which stock ssh
will not do for a certificate whose CA signature is broken or for a host
certificate (it checks both when it loads the file): fived must judge them.

    python3 certificate_login.py PORT USER KEYFILE CERTFILE [SIGNING-KEYFILE]

With SIGNING-KEYFILE, the session signature is made with that key instead of
the one the certificate certifies.

Prints `RESULT authenticated`, `RESULT denied`, or `RESULT unanswered` when no
answer came within 5 s (libssh 0.10.6 drops a request whose signature does
not verify without replying).
"""
import socket
import sys

import paramiko


def main():
    port, user, key_path, cert_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    signer = sys.argv[5] if len(sys.argv) > 5 else key_path
    key = paramiko.Ed25519Key.from_private_key_file(signer)
    key.load_certificate(cert_path)  # paramiko checks only that the key types agree
    transport = paramiko.Transport(socket.create_connection(("127.0.0.1", port), timeout=10))
    transport.start_client(timeout=10)
    transport.auth_timeout = 5
    try:
        transport.auth_publickey(user, key)
        print("RESULT authenticated" if transport.is_authenticated() else "RESULT denied")
    except paramiko.AuthenticationException as e:
        print("RESULT unanswered" if "timeout" in str(e).lower() else "RESULT denied")
    transport.close()


if __name__ == "__main__":
    main()

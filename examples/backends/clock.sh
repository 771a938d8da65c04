#!/bin/sh
# Demo backend behind a loopback TCP port: says what time it is, then closes.
echo "It is $(date -u '+%Y-%m-%d %H:%M:%S') UTC on $(hostname)."

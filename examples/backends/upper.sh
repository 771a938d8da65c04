#!/bin/sh
# Demo backend behind a Unix socket: upper-cases each line as it arrives.
exec sed -u 's/.*/\U&/'

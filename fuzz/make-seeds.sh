#!/usr/bin/env bash
# Regenerates the seed corpora of the certificate and krl harnesses with
# ssh-keygen (run once; the seeds are committed like the other corpora):
#
#   bash fuzz/make-seeds.sh
#
# certificate/: raw certificate blobs (the base64 field of -cert.pub, decoded)
#   from Ed25519, ECDSA and RSA CAs, with options, a host certificate, a SHA-1
#   signature. krl/: KRLs with every section ssh-keygen writes, and a text list.
# Keys and certificates live in a temporary directory that is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$PWD/fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
export TZ=UTC
mkdir -p "$out/certificate" "$out/krl"

k() { ssh-keygen -q -N '' -C "$1" -f "$@"; }
k ca -t ed25519
k ec -t ecdsa -b 384
k rsa -t rsa -b 2048
k user -t ed25519
k user256 -t ecdsa -b 256
k user521 -t ecdsa -b 521

blob() { cut -d' ' -f2 "$1" | base64 -d > "$out/certificate/$2"; }
ssh-keygen -q -s ca -I alice-laptop -n alice,bob -V 20260101Z:20270101Z -z 42 user.pub && blob user-cert.pub ed25519
ssh-keygen -q -s ca -I opts -n alice -O force-command=web -O source-address=10.0.0.0/8,::1 -O no-port-forwarding \
    -O critical:verify-foo=bar -O extension:x@example.com=1 user.pub && blob user-cert.pub options
ssh-keygen -q -s ec -I ec -n alice user256.pub && blob user256-cert.pub ecdsa
ssh-keygen -q -s rsa -I rsa -n alice -t rsa-sha2-256 user521.pub && blob user521-cert.pub rsa-sha256
ssh-keygen -q -s rsa -I sha1 -n alice -t ssh-rsa user.pub && blob user-cert.pub rsa-sha1
ssh-keygen -q -s ca -I host -h -n web1.example rsa.pub && blob rsa-cert.pub host

odd=$(seq 1 2 99 | sed 's/^/serial: /')
printf '%s\nserial: 500-600\nid: alice-laptop\nkey: %s\nsha1: %s\nsha256: %s\nhash: %s\n' \
    "$odd" "$(cat user256.pub)" "$(cat user521.pub)" "$(cat rsa.pub)" \
    "$(ssh-keygen -lf ec.pub | cut -d' ' -f2)" > spec
ssh-keygen -q -k -f "$out/krl/full" -s ca.pub spec
printf 'id: alice-laptop\nserial: 7\n' > any
ssh-keygen -q -k -f "$out/krl/any-ca" -s none any
ssh-keygen -q -k -f "$out/krl/empty"
{ echo "# revoked"; cat user.pub user256.pub ec.pub; } > "$out/krl/text"
echo "seeds: $(ls "$out/certificate" | wc -l) certificates, $(ls "$out/krl" | wc -l) revocation lists" >&2

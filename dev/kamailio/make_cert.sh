#!/usr/bin/env bash
# A self-signed certificate for wss://127.0.0.1:8089, made once per checkout into DIR.
# Browsers reject it unless told otherwise; the e2e test trusts exactly this key with
# --ignore-certificate-errors-spki-list=<spki hash> (printed into DIR/cert.spki).
set -euo pipefail
dir=${1:?usage: make_cert.sh DIR}
mkdir -p "$dir"
if [ ! -s "$dir/cert.pem" ] || [ ! -s "$dir/key.pem" ]; then
  (umask 077; openssl req -x509 -newkey rsa:2048 -nodes -days 825 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj "/CN=watheeq-dev-pbx" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null)
fi
openssl x509 -in "$dir/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64 > "$dir/cert.spki"

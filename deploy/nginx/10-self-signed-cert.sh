#!/bin/sh
# First start: a self-signed certificate for local use, kept in the `tls` volume. In production mount the
# real certificate and key at the same paths (or terminate TLS at the load balancer).
set -eu
dir=/etc/nginx/tls
if [ ! -s "$dir/tls.crt" ] || [ ! -s "$dir/tls.key" ]; then
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
  chmod 600 "$dir/tls.key"
  echo "nginx: generated a self-signed certificate for localhost in $dir"
fi

#!/bin/sh
set -eu
for script in /docker-entrypoint.d/*.sh; do
  [ -f "$script" ] && sh "$script"
done
exec "$@"

#!/bin/sh
# The image's command picks the role (docs/deploy.md):
#   api        the scoring API (uvicorn, API_WORKERS processes) on API_PORT (5001)
#   dashboard  the operator console on DASHBOARD_PORT (8050)
#   worker     the scheduler (one active at a time; others wait as warm spares)
#   migrate    `ticketguard db upgrade`, then exit (run once before the others start)
#   seed       simulated history and a trained, promoted model (demo and smoke tests only)
# Anything else runs as a `ticketguard` sub-command, e.g. `docker run IMAGE models list`.
set -eu
role="${1:-api}"
[ "$#" -gt 0 ] && shift
case "$role" in
  api)
    exec ticketguard serve api --host "${API_HOST:-0.0.0.0}" --port "${API_PORT:-5001}" "$@" ;;
  dashboard)
    exec ticketguard serve dashboard --host "${API_HOST:-0.0.0.0}" --port "${DASHBOARD_PORT:-8050}" "$@" ;;
  worker)
    exec ticketguard worker --wait "$@" ;;
  migrate)
    exec ticketguard db upgrade "$@" ;;
  seed)
    ticketguard db upgrade
    ticketguard simulate --transactions "${SEED_TRANSACTIONS:-50000}" --seed "${SEED_RANDOM:-7}" --replace
    exec ticketguard train --promote ;;
  ticketguard)
    exec ticketguard "$@" ;;
  *)
    exec ticketguard "$role" "$@" ;;
esac

#!/usr/bin/env bash
# Build a Debian bookworm base image without a registry: debootstrap a minimal root file system with
# python3 (+ venv, CA certificates), bring it up to date from bookworm-updates and bookworm-security, and
# `docker import` it. Use it where Docker Hub cannot be reached:
#
#   deploy/base-image.sh                      # -> ticketguard-base:bookworm
#   docker build --build-arg BASE_IMAGE=ticketguard-base:bookworm -t ticketguard:local .
#
# Where Docker Hub is reachable, skip this: the Dockerfile defaults to python:3.11-slim and compose.yaml to
# the official postgres, redis and nginx images.
set -euo pipefail

TAG="${1:-ticketguard-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="${BASE_WORKDIR:-/var/tmp/ticketguard-base}"

if docker image inspect "$TAG" >/dev/null 2>&1 && [ -z "${REBUILD_BASE:-}" ]; then
  echo "base image $TAG exists (REBUILD_BASE=1 to rebuild)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is needed: apt-get install debootstrap" >&2; exit 2; }

rootfs="$WORK/rootfs"
if [ ! -x "$rootfs/usr/bin/python3" ]; then
  rm -rf "$rootfs"
  mkdir -p "$WORK"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR"
fi
cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
SOURCES
# Security updates in, then nothing left behind that an image does not need.
chroot "$rootfs" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq \
  && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/* /tmp/*'
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$TAG"
echo "built $TAG"

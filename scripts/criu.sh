#!/usr/bin/env bash
# Print the path of a working criu (one whose `criu check` passes), building one if needed.
#
# The criu on PATH is used when `criu check` passes. Debian 12's criu 3.17 fails on 6.x
# kernels (its vDSO parser), so otherwise CRIU 4.2 is built from the vendored source
# (../shared/vendor/criu-4.2.tar.gz, or $RUNR_CRIU_TARBALL) into a directory of its own,
# $RUNR_CRIU_PREFIX (default /opt/runr-criu), never over Debian's package. The build is cached:
# a second run prints the built binary at once. Build output goes to stderr; stdout is only
# the path. Exits non-zero (with the reason on stderr) when no working criu can be had.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${RUNR_CRIU_PREFIX:-/opt/runr-criu}"
tarball="${RUNR_CRIU_TARBALL:-$here/../shared/vendor/criu-4.2.tar.gz}"
built="$prefix/criu-4.2/criu/criu"

works() { "$1" check >/dev/null 2>&1; }

if [ -n "${RUNR_CRIU:-}" ] && works "$RUNR_CRIU"; then
  echo "$RUNR_CRIU"; exit 0
fi
if [ -x "$built" ] && works "$built"; then
  echo "$built"; exit 0
fi
if onpath="$(command -v criu 2>/dev/null)" && works "$onpath"; then
  echo "$onpath"; exit 0
fi
if [ ! -f "$tarball" ]; then
  echo "criu.sh: no working criu on PATH and no CRIU source at $tarball" >&2
  exit 1
fi
{
  echo "criu.sh: building CRIU 4.2 from $tarball into $prefix"
  pkgs=(build-essential pkg-config libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler
        protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev
        libgnutls28-dev libnftables-dev libbsd-dev libaio-dev uuid-dev)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  mkdir -p "$prefix"
  rm -rf "$prefix/criu-4.2"
  tar xzf "$tarball" -C "$prefix"
  # This host has no iptables binary: lock the network with nftables (chosen at build time,
  # since 4.2 crashes when a config file sets it in RPC mode).
  make -C "$prefix/criu-4.2" -j"$(nproc)" NETWORK_LOCK_DEFAULT=NETWORK_LOCK_NFTABLES criu
} >&2
if ! works "$built"; then
  echo "criu.sh: built $built but \`criu check\` fails:" >&2
  "$built" check >&2 || true
  exit 1
fi
echo "$built"

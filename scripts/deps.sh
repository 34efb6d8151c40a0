#!/usr/bin/env bash
# Install what building and testing runr needs on a fresh Debian machine (as root).
set -euo pipefail
need=()
command -v busybox >/dev/null 2>&1 && busybox --list >/dev/null 2>&1 && file -L "$(command -v busybox)" 2>/dev/null | grep -q static || need+=(busybox-static)
command -v file >/dev/null 2>&1 || need+=(file)
command -v ps >/dev/null 2>&1 || need+=(procps)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# seccomp: libseccomp, linked statically (see .cargo/config.toml).
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.a ] || need+=(libseccomp-dev)
# The seccomp tests load podman's default profile, from Debian's containers-common.
[ -e /usr/share/containers/seccomp.json ] || need+=(golang-github-containers-common)
# The systemd driver's test runs a private D-Bus daemon.
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus-daemon)
# Rootless tests map subordinate ids with the setuid helpers newuidmap and newgidmap.
command -v newuidmap >/dev/null 2>&1 || need+=(uidmap)
# Static C test helpers (tests/helpers) need the static C library.
[ "$(cc -print-file-name=libc.a 2>/dev/null)" != libc.a ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is needed: install Rust (e.g. apt-get install -y cargo, or rustup)" >&2
  exit 1
fi

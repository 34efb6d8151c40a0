#!/usr/bin/env bash
# Build runr and run a busybox container that shows what it sees. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --quiet
runr="$PWD/target/x86_64-unknown-linux-gnu/release/runr"
bundle=$(mktemp -d /tmp/runr-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for applet in $(busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$bundle/rootfs/etc/passwd"
cd "$bundle"
"$runr" spec
# No terminal (the demo may run without one), and a program that reports on its world.
sed -i 's/"terminal": true/"terminal": false/' config.json
sed -i 's|"sh"$|"sh", "-c", "echo hello from $(hostname), pid $$ in my own pid namespace; id; echo my mounts:; cut -d\\" \\" -f2,3 /proc/mounts"|' config.json
"$runr" run "demo-$$"

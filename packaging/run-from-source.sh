#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds crowdwall, installs the binary as
# /usr/local/bin/crowdwall (so `crowdwall status` and the other commands README shows work
# from a second terminal) and runs the daemon in the foreground on the embedded defaults
# (protecting sshd through the system journal). Needs root. README.md names it.
#   --install-only  build and install, do not run the daemon
# Other arguments go to `crowdwall run`. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
run=1
if [ "${1:-}" = --install-only ]; then run=0; shift; fi
bash tests/lab/deps.sh build
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p crowdwall
tdir=$(bash packaging/target-dir.sh)
bin="$tdir/release/crowdwall"
[ -x "$bin" ] || { echo "run-from-source.sh: the build left no binary at '$bin'" >&2; exit 1; }
install -D -m 0755 "$bin" /usr/local/bin/crowdwall
echo "run-from-source.sh: installed /usr/local/bin/crowdwall ($(/usr/local/bin/crowdwall --version))"
[ "$run" = 1 ] || exit 0
echo "run-from-source.sh: starting the daemon in the foreground (Ctrl-C stops it; bans stay and expire on their own)."
echo "run-from-source.sh: in another terminal: crowdwall status, crowdwall decisions list"
exec /usr/local/bin/crowdwall run "$@"

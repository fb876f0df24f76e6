#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs the daemon in the foreground on the embedded
# defaults (protecting sshd through the system journal). Needs root. README.md names it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/lab/deps.sh build
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
exec target/release/crowdwall run "$@"

#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs packages, starts
# journald, builds, runs every test including the ones against the real kernel, journald and
# sshd (they fail instead of skipping here). README.md names this command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/lab/deps.sh test
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
export CROWDWALL_REQUIRE_ROOT_TESTS=1
cargo build --release --locked
cargo test --release --locked --no-fail-fast -- --test-threads=2

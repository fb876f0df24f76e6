#!/usr/bin/env bash
# Prints cargo's target directory for this workspace: `target` unless CARGO_TARGET_DIR (or
# build.target-dir in a cargo config) says otherwise. The packaging scripts find the built
# binaries through it instead of assuming target/release.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo metadata --no-deps --format-version 1 --offline 2>/dev/null \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'

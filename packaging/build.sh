#!/usr/bin/env bash
# Builds the .deb (cargo-deb) and the .rpm (cargo-generate-rpm) from packaging/ (README names
# this command). The man page and shell completions are generated from the binary's own clap
# definitions first. Output: target/debian/*.deb and target/generate-rpm/*.rpm.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
bash packaging/tools.sh
cargo build --release --locked
rm -rf target/package-assets
target/release/crowdwall generate target/package-assets >/dev/null
# --no-build: the binary above is the one packaged; dpkg-shlibdeps fills Depends ($auto).
cargo deb --no-build --locked
cargo generate-rpm
ls target/debian/*.deb target/generate-rpm/*.rpm

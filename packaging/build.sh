#!/usr/bin/env bash
# Builds the packages (README names this command): crowdwall (the host: daemon and CLI) and
# crowdwall-hub (the community hub server), each as a .deb (cargo-deb) and an .rpm
# (cargo-generate-rpm). The man page and shell completions are generated from the CLI's own
# clap definitions first. Output: target/debian/*.deb and target/generate-rpm/*.rpm.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
bash packaging/tools.sh
# --workspace: the same feature set as tests/run.sh builds, so nothing is compiled twice.
cargo build --release --locked --workspace
rm -rf target/package-assets
target/release/crowdwall generate target/package-assets >/dev/null
# --no-build: the binaries above are the ones packaged; dpkg-shlibdeps fills Depends ($auto).
cargo deb --no-build --locked -p crowdwall
cargo deb --no-build --locked -p crowdwall-hub
cargo generate-rpm -p .
cargo generate-rpm -p src/crates/hub
ls target/debian/*.deb target/generate-rpm/*.rpm

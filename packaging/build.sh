#!/usr/bin/env bash
# Builds the packages (README names this command): crowdwall (the host: daemon and CLI) and
# crowdwall-hub (the community hub server), each as a .deb (cargo-deb) and an .rpm
# (cargo-generate-rpm). The man page and shell completions are generated from the CLI's own
# clap definitions first. Output: TARGET/debian/*.deb and TARGET/generate-rpm/*.rpm, TARGET
# being cargo's target directory (`target`, or $CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
bash packaging/tools.sh
# --workspace: the same feature set as tests/run.sh builds, so nothing is compiled twice.
cargo build --release --locked --workspace
# CARGO_TARGET_DIR may put the build anywhere: every path below goes through it. The
# packagers rewrite the `target/release/` prefix of Cargo.toml's binary assets to the same
# place.
tdir=$(bash packaging/target-dir.sh)
[ -n "$tdir" ] && [ -x "$tdir/release/crowdwall" ] || { echo "build.sh: no crowdwall binary in '$tdir/release'" >&2; exit 1; }
# The generated man pages and completions go to ./target/package-assets whatever the target
# directory: assets outside target/release are not "built" for cargo-deb, so it gzips the man
# pages as Debian policy wants.
rm -rf target/package-assets
"$tdir/release/crowdwall" generate target/package-assets >/dev/null
# --no-build: the binaries above are the ones packaged; dpkg-shlibdeps fills Depends ($auto).
mkdir -p "$tdir/debian" "$tdir/generate-rpm"
cargo deb --no-build --locked -p crowdwall -o "$tdir/debian/"
cargo deb --no-build --locked -p crowdwall-hub -o "$tdir/debian/"
cargo generate-rpm -p . --target-dir "$tdir" -o "$tdir/generate-rpm/"
cargo generate-rpm -p src/crates/hub --target-dir "$tdir" -o "$tdir/generate-rpm/"
ls "$tdir"/debian/*.deb "$tdir"/generate-rpm/*.rpm

#!/usr/bin/env bash
# Installs the packaging tools at pinned versions, skipping what is already there (a fresh
# machine compiles them once, for a few minutes; later runs cost nothing).
set -euo pipefail
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
want_deb=3.8.0
want_rpm=0.21.1
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $want_deb"; then
  cargo install --locked cargo-deb --version "$want_deb"
fi
if ! cargo generate-rpm --version 2>/dev/null | grep -qx "cargo-generate-rpm $want_rpm"; then
  cargo install --locked cargo-generate-rpm --version "$want_rpm"
fi
# dpkg-shlibdeps (cargo-deb's $auto dependencies) and the rpm tools for checking the .rpm.
missing=()
for p in dpkg-dev rpm; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

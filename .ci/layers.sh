#!/usr/bin/env bash
# The layering the crates promise (ARCHITECTURE.md, "Crate map"), checked on the dependency
# graph cargo resolves rather than trusted to review:
# - the pure engine pulls no tokio, SQLite, netlink, nix, libc or HTTP client, and not
#   crowdwall-base's `clock`/`random` features;
# - the host's package (daemon + CLI) does not pull the hub's PostgreSQL client;
# - each crate depends only on the layers below it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fail() { echo "layers: $*" >&2; exit 1; }
tree() { cargo tree --locked -e normal --prefix none --format '{p}' "$@" | awk '{print $1}' | sort -u; }

engine=$(tree -p crowdwall-engine)
for bad in tokio rusqlite libsqlite3-sys nix libc reqwest nftnl mnl axum systemd systemd-journal-logger getrandom; do
  grep -qx "$bad" <<<"$engine" && fail "crowdwall-engine depends on $bad"
done
features=$(cargo tree --locked -e features -p crowdwall-engine -i crowdwall-base --prefix none 2>/dev/null || true)
grep -q 'crowdwall-base feature "clock"' <<<"$features" && fail "crowdwall-engine enables crowdwall-base/clock"
host=$(tree -p crowdwall)
grep -qx tokio-postgres <<<"$host" && fail "the host package (crowdwall) pulls tokio-postgres"
grep -qx crowdwall-hub <<<"$host" && fail "the host package (crowdwall) pulls crowdwall-hub"

# Who may depend on whom (normal dependencies, workspace crates only).
allowed() {
  case $1 in
    crowdwall-base) echo "" ;;
    crowdwall-engine) echo "crowdwall-base" ;;
    crowdwall-nft) echo "crowdwall-base crowdwall-engine" ;;
    crowdwall-proto) echo "crowdwall-base" ;;
    crowdwall-daemon) echo "crowdwall-base crowdwall-engine crowdwall-nft crowdwall-proto" ;;
    crowdwall-hub) echo "crowdwall-base crowdwall-proto" ;;
    crowdwall) echo "crowdwall-base crowdwall-engine crowdwall-nft crowdwall-proto crowdwall-daemon" ;;
  esac
}
for c in crowdwall-base crowdwall-engine crowdwall-nft crowdwall-proto crowdwall-daemon crowdwall-hub crowdwall; do
  for d in $(tree -p "$c" | grep '^crowdwall' | grep -vx "$c"); do
    grep -qw -- "$d" <<<"$(allowed "$c")" || fail "$c depends on $d, which is not below it"
  done
done
echo "layers: ok (engine pure; host without tokio-postgres; each crate only on the ones below)"

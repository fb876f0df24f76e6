#!/bin/bash
# Memory of the daemon under a live flood of distinct sources through the real journal
# (issue 12.6): N failed logins from N distinct addresses written with systemd-cat, the
# daemon's VmRSS split into anonymous memory (its own heap: buckets, tables) and file-backed
# pages (sd-journal maps the journal files: page cache, shared and reclaimable).
# Usage: bash benches/journal_rss.sh [N] (default 500000). Needs root and a running journald
# (bash tests/lab/deps.sh test); builds nothing: run `cargo build --release` first.
set -euo pipefail
N=${1:-500000}
BIN=${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/crowdwall
DIR=$(mktemp -d /var/tmp/cw-rss.XXXXXX)
NS=cwrss$$
IDENT=cwrss$$
trap 'kill "$(cat "$DIR/pid" 2>/dev/null)" 2>/dev/null || true; ip netns del "$NS" 2>/dev/null || true; rm -rf "$DIR"' EXIT
cat > "$DIR/cfg.toml" <<CFG
[journal]
matches = ["SYSLOG_IDENTIFIER=$IDENT"]
[parsers.app]
identifiers = ["$IDENT"]
[[parsers.app.rules]]
kind = "auth_fail"
pattern = 'login failed for <user> from <ip>'
[scenarios.app-bf]
service = "app"
kinds = ["auth_fail"]
capacity = 4
leak = "60s"
CFG
python3 -c "
import sys
for i in range($N):
    print(f'login failed for u{i%7} from 10.{1+i//65536}.{(i//256)%256}.{i%256}')
" > "$DIR/flood.txt"
ip netns add "$NS"
ip netns exec "$NS" "$BIN" --config "$DIR/cfg.toml" --socket "$DIR/ctl.sock" run --state-dir "$DIR/state" 2>"$DIR/log" &
echo $! > "$DIR/pid"
for _ in $(seq 100); do "$BIN" --socket "$DIR/ctl.sock" status >/dev/null 2>&1 && break; sleep 0.1; done
PID=$(cat "$DIR/pid")
kb() { awk -v k="$1:" '$1==k{print $2}' /proc/"$PID"/status; }
printf '| when | entries read | live buckets | VmRSS MB | RssAnon MB | RssFile MB |\n|---|---:|---:|---:|---:|---:|\n'
row() {
    read -r e b < <("$BIN" --socket "$DIR/ctl.sock" status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["sources"][0]["entries_read"], d["buckets"]["live_buckets"])')
    printf '| %s | %s | %s | %.1f | %.1f | %.1f |\n' "$1" "$e" "$b" "$(echo "$(kb VmRSS)/1024" | bc -l)" "$(echo "$(kb RssAnon)/1024" | bc -l)" "$(echo "$(kb RssFile)/1024" | bc -l)"
}
row "idle"
systemd-cat -t "$IDENT" < "$DIR/flood.txt"
for _ in $(seq 120); do
    e=$("$BIN" --socket "$DIR/ctl.sock" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["entries_read"])')
    [ "$e" -ge "$N" ] && break
    sleep 1
done
row "after $N"
sleep 10
row "10 s later"

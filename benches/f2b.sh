#!/bin/sh
# fail2ban's own filters, run by crowdwall (`[fail2ban] jails`, `replay --parser f2b:JAIL`)
# and by fail2ban-regex, on the same logs: each filter's sample log repeated to N lines
# (default 1M). Prints lines/s of both and the ratio.
#
#   CARGO_TARGET_DIR=/work/target15 benches/f2b.sh [N]
#
# Needs Debian's fail2ban (filters, sample logs, fail2ban-regex) and a release build of the
# crowdwall binary ($CROWDWALL, else $CARGO_TARGET_DIR/release/crowdwall). Every filter runs
# in its default mode on both sides (apache-auth's `(?!evasive)` look-ahead is rewritten,
# see README, fail2ban filters).
set -eu
N=${1:-1000000}
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CROWDWALL:-${CARGO_TARGET_DIR:-$here/target}/release/crowdwall}
LOGS=/usr/lib/python3/dist-packages/fail2ban/tests/files/logs
[ -x "$BIN" ] || { echo "no crowdwall binary at $BIN (cargo build --release)" >&2; exit 1; }
command -v fail2ban-regex >/dev/null || { echo "fail2ban-regex not found (apt-get install fail2ban)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/f2b"
cp -r /etc/fail2ban/. "$tmp/f2b/"
: > "$tmp/f2b/jail.local"
jails=""
for spec in "asterisk:asterisk" "postfix:postfix" "apache-auth:apache-auth"; do
    name=${spec%%:*}
    filter=${spec#*:}
    grep -v '^#' "$LOGS/$name" | grep -v '^[[:space:]]*$' |
        awk -v n="$N" '{a[NR]=$0} END {for (i = 0; i < n; i++) print a[i % NR + 1]}' > "$tmp/$name.log"
    printf '[%s]\nenabled = true\nfilter = %s\nlogpath = %s\n\n' "$name" "$filter" "$tmp/$name.log" >> "$tmp/f2b/jail.local"
    jails="$jails\"$name\", "
done
{ cat "$here/config/crowdwall.toml"; printf '\n[fail2ban]\ndir = "%s"\njails = [%s]\n' "$tmp/f2b" "$jails"; } > "$tmp/cw.toml"
now() { date +%s.%N; }
printf '%-13s %10s %14s %14s %8s\n' filter lines crowdwall/s fail2ban/s ratio
for spec in "asterisk:asterisk" "postfix:postfix" "apache-auth:apache-auth"; do
    name=${spec%%:*}
    filter=${spec#*:}
    lines=$(wc -l < "$tmp/$name.log")
    t0=$(now)
    "$BIN" --config "$tmp/cw.toml" replay --parser "f2b:$name" "$tmp/$name.log" > "$tmp/$name.cw" 2>&1
    t1=$(now)
    fail2ban-regex --config "$tmp/f2b" "$tmp/$name.log" "$filter" > "$tmp/$name.f2b" 2>&1
    t2=$(now)
    awk -v n="$lines" -v a="$t0" -v b="$t1" -v c="$t2" -v f="$name" \
        'BEGIN { cw = n / (b - a); fb = n / (c - b); printf "%-13s %10d %14.0f %14.0f %7.1fx\n", f, n, cw, fb, cw / fb }'
    grep -E '^Lines:' "$tmp/$name.f2b" | sed "s/^/    fail2ban-regex $name: /"
done

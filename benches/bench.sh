#!/usr/bin/env bash
# crowdwall benchmark: prints a markdown table (README "Figures").
#   sudo bash benches/bench.sh [N]          # N log lines, default 1000000
# - replay throughput on one core (taskset -c 0) over a seeded sshd log from
#   ../shared/bench/gen_sshd_log.py, scored against its ground truth;
# - Debian's fail2ban-regex with its sshd filter on the same log in the same run (ratio);
# - log-to-kernel latency (p50/p99 over CW_BANS bans, default 250) and idle RSS through the
#   real journal and a network namespace (cargo bench --bench latency).
# - BASE_BIN=path/to/older/crowdwall: that binary replays the same log in the same run, turn
#   about with this one (three runs each, medians), for a before/after ratio.
# Timing is reported, never asserted: these machines are shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SEED=${SEED:-42}
WORK=${BENCH_WORK:-/var/tmp/crowdwall-bench}
GEN=${GEN:-../shared/bench/gen_sshd_log.py}
F2B_LINES=${F2B_LINES:-$N}
mkdir -p "$WORK"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --locked --quiet
BIN="$(bash packaging/target-dir.sh)/release/crowdwall"  # CARGO_TARGET_DIR honoured
LOG=$WORK/auth-$N-s$SEED.log
TRUTH=$WORK/truth-$N-s$SEED.json
[ -s "$LOG" ] && [ -s "$TRUTH" ] || python3 "$GEN" "$N" --seed "$SEED" -o "$LOG" --truth "$TRUTH" >&2

# crowdwall replay, one core
/usr/bin/time -f '%e %M' -o "$WORK/cw.time" taskset -c 0 "$BIN" --config config/crowdwall.toml \
  replay --year 2026 "$LOG" > "$WORK/cw.decisions" 2> "$WORK/cw.stderr"
read -r cw_s cw_rss < "$WORK/cw.time"
base_s=""
if [ -n "${BASE_BIN:-}" ]; then
  a=(); b=()
  for _ in 1 2 3; do
    /usr/bin/time -f '%e' -o "$WORK/base.time" taskset -c 0 "$BASE_BIN" --config config/crowdwall.toml \
      replay --year 2026 "$LOG" > /dev/null 2>&1; b+=("$(cat "$WORK/base.time")")
    /usr/bin/time -f '%e' -o "$WORK/cw2.time" taskset -c 0 "$BIN" --config config/crowdwall.toml \
      replay --year 2026 "$LOG" > /dev/null 2>&1; a+=("$(cat "$WORK/cw2.time")")
  done
  med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
  cw_s=$(med "${a[@]}"); base_s=$(med "${b[@]}")
fi

# fail2ban-regex, same log (or its first F2B_LINES lines), one core
f2b_s=""; f2b_lines=$F2B_LINES
if command -v fail2ban-regex >/dev/null; then
  head -n "$F2B_LINES" "$LOG" > "$WORK/f2b-input.log"
  /usr/bin/time -f '%e %M' -o "$WORK/f2b.time" taskset -c 0 fail2ban-regex -r --print-no-missed \
    --print-no-ignored "$WORK/f2b-input.log" sshd > "$WORK/f2b.out" 2>&1 || true
  read -r f2b_s f2b_rss < "$WORK/f2b.time"
fi

# latency and idle RSS (needs root, journald, netns)
lat_out=$(cargo bench --locked --quiet --bench latency 2>/dev/null || true)
val() { printf '%s\n' "$lat_out" | sed -n "s/^$1=//p" | tail -1; }

python3 - "$N" "$LOG" "$TRUTH" "$WORK/cw.decisions" "$cw_s" "$cw_rss" "$f2b_lines" "${f2b_s:-}" "${f2b_rss:-}" \
  "$(val latency_p50_ms)" "$(val latency_p99_ms)" "$(val bans)" "$(val timeouts)" "$(val idle_rss_kib)" "$(val rss_after_bans_kib)" \
  "$base_s" <<'PY'
import json, sys
(n, log, truth_p, dec_p, cw_s, cw_rss, f2b_lines, f2b_s, f2b_rss,
 p50, p99, bans, timeouts, idle, loaded, base_s) = sys.argv[1:]
n = int(n); cw_s = float(cw_s); cw_rss = int(cw_rss)
truth = json.load(open(truth_p))
gt60 = set(truth["attackers"]); gt600 = set(truth["attackers_600s"])
roles = truth.get("role_of_source_ip", {})
flagged = set()
for line in open(dec_p):
    line = line.strip()
    if line.startswith("{"):
        flagged.add(json.loads(line)["value"])
tp = len(flagged & gt60); fn = len(gt60 - flagged)
fp = flagged - gt60 - gt600
by_role = {}
for ip in fp:
    r = roles.get(ip, "?"); by_role[r] = by_role.get(r, 0) + 1
benign_banned = sum(1 for ip in flagged if roles.get(ip) == "benign")
cw_rate = n / cw_s
print(f"Benchmark: {n:,} generated sshd syslog lines (seed {truth.get('seed', '?')}), "
      f"{len(truth.get('role_of_source_ip', {})):,} sources, {len(gt60)} attackers (>= 6 failures in 60 s), {len(gt600)} within 600 s.\n")
print("| measure | crowdwall | baseline | ratio |")
print("|---|---:|---:|---:|")
if f2b_s:
    f2b_rate = int(f2b_lines) / float(f2b_s)
    print(f"| replay throughput, one core (lines/s) | {cw_rate:,.0f} | fail2ban-regex sshd: {f2b_rate:,.0f} | {cw_rate / f2b_rate:.1f}x |")
    print(f"| replay peak RSS (MiB) | {cw_rss / 1024:.1f} | fail2ban-regex: {int(f2b_rss) / 1024:.1f} | |")
else:
    print(f"| replay throughput, one core (lines/s) | {cw_rate:,.0f} | fail2ban-regex missing | |")
    print(f"| replay peak RSS (MiB) | {cw_rss / 1024:.1f} | | |")
if base_s:
    base_rate = n / float(base_s)
    print(f"| replay throughput vs BASE_BIN (medians of 3, lines/s) | {cw_rate:,.0f} | BASE_BIN: {base_rate:,.0f} | {cw_rate / base_rate:.2f}x |")
print(f"| attackers banned (of {len(gt60)}, 60 s truth) | {tp} | | |")
print(f"| attackers banned (of {len(gt600)}, 600 s truth: fail2ban's findtime) | {len(flagged & gt600)} | | |")
probers = {ip for ip, r in roles.items() if r == "prober"}
print(f"| probers banned (of {len(probers)}, at most 3 failures an hour) | {len(flagged & probers)} | | |")
print(f"| missed attackers | {fn} | | |")
print(f"| banned, in neither truth set | {len(fp)} {dict(sorted(by_role.items())) if by_role else ''} | | |")
print(f"| benign sources banned | {benign_banned} | | |")
print(f"| also in the 600 s truth set | {len(flagged & (gt600 - gt60))} | | |")
if p50:
    print(f"| journal write -> kernel set, p50 (ms) | {float(p50):.2f} | | |")
    print(f"| journal write -> kernel set, p99 (ms) | {float(p99):.2f} | | |")
    print(f"| bans timed (timeouts) | {bans} ({timeouts}) | | |")
    print(f"| daemon idle RSS (MiB) | {int(idle) / 1024:.1f} | | |")
    print(f"| daemon RSS after the bans (MiB) | {int(loaded) / 1024:.1f} | | |")
else:
    print("| latency / idle RSS | not measured (needs root, journald, netns) | | |")
PY

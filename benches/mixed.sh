#!/usr/bin/env bash
# All-parsers replay throughput on one core over a seeded mixed log (sshd, nginx, postfix,
# kernel; benches/gen_mixed_log.py), against the sshd lines of the same log alone as the
# baseline, in the same run. Prints a markdown table; timing is reported, never asserted.
#   bash benches/mixed.sh [N]     # N lines, default 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
WORK=${BENCH_WORK:-/var/tmp/crowdwall-bench}
mkdir -p "$WORK"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
BIN="$(bash packaging/target-dir.sh)/release/crowdwall"  # CARGO_TARGET_DIR honoured
LOG=$WORK/mixed-$N.log
[ -s "$LOG" ] || python3 benches/gen_mixed_log.py "$N" --seed 42 -o "$LOG"
for svc in sshd nginx postfix kernel; do grep " $svc" "$LOG" > "$WORK/mixed-$N-$svc.log" || true; done
rate() { # file -> lines/s (best of 3)
  local best=0
  for _ in 1 2 3; do
    r=$(taskset -c 0 "$BIN" --config config/crowdwall.toml replay --year 2026 "$1" 2>&1 >/dev/null \
        | sed -n 's/.*(\([0-9]*\) lines\/s).*/\1/p' | head -1)
    [ "${r:-0}" -gt "$best" ] && best=$r
  done
  echo "$best"
}
all=$(rate "$LOG")
echo "Mixed log: $N lines (seed 42), a quarter each of sshd, nginx access, postfix, kernel; one core, best of 3."
echo
echo "| input | lines/s | vs sshd alone |"
echo "|---|---:|---:|"
base=$(rate "$WORK/mixed-$N-sshd.log")
for svc in sshd nginx postfix kernel; do
  r=$(rate "$WORK/mixed-$N-$svc.log")
  echo "| $svc lines only | $r | $(python3 -c "print(f'{$r/$base:.2f}x')") |"
done
echo "| all, mixed | $all | $(python3 -c "print(f'{$all/$base:.2f}x')") |"

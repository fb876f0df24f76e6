#!/usr/bin/env bash
# CI's package proof: builds the .deb and the .rpm, installs the .deb with dpkg -i (no systemd
# as PID 1 here: the postinst's enable/start must not fail), checks files, conffile,
# dependencies, the installer allowlist drop-in, `crowdwall --version`, `check-config`, the
# unit (systemd-analyze verify, security score <= 3.0), an upgrade that keeps decisions and
# the drop-in, then purges and checks that the binary, unit, state, drop-in and nftables table
# are gone. The .rpm is checked with rpm -qlp / --scripts / --requires. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fail() { echo "package check: $*" >&2; exit 1; }
ok() { echo "package check: ok: $*"; }

# The build honours CARGO_TARGET_DIR (README's commands used to fail with it set): build
# into a target directory elsewhere when none is given, and find everything through it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/check-elsewhere}
bash packaging/build.sh
tdir=$(bash packaging/target-dir.sh)
[ "$tdir" = "$CARGO_TARGET_DIR" ] || fail "target-dir.sh says '$tdir', CARGO_TARGET_DIR is '$CARGO_TARGET_DIR'"
deb=$(ls "$tdir"/debian/crowdwall_*.deb | tail -1)
rpm=$(ls "$tdir"/generate-rpm/crowdwall-0*.rpm | tail -1)
hub_deb=$(ls "$tdir"/debian/crowdwall-hub_*.deb | tail -1)
hub_rpm=$(ls "$tdir"/generate-rpm/crowdwall-hub-*.rpm | tail -1)
ok "built with CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

# run-from-source.sh installs the CLI on PATH (README's next commands use it).
bash packaging/run-from-source.sh --install-only >/dev/null || fail "run-from-source.sh --install-only failed"
/usr/local/bin/crowdwall --version | grep -q '^crowdwall ' || fail "run-from-source.sh left no /usr/local/bin/crowdwall"
rm -f /usr/local/bin/crowdwall
ok "run-from-source.sh installs /usr/local/bin/crowdwall with CARGO_TARGET_DIR set"

# --- .rpm: contents, scripts and dependencies, without installing it -----------------------
files=$(rpm -qlp "$rpm")
for f in /usr/bin/crowdwall /etc/crowdwall/crowdwall.toml /usr/lib/systemd/system/crowdwall.service \
         /usr/share/man/man1/crowdwall.1 /usr/share/man/man1/crowdwall-decisions-list.1 \
         /usr/share/bash-completion/completions/crowdwall; do
  grep -qx "$f" <<<"$files" || fail "rpm lacks $f"
done
rpm -qp --configfiles "$rpm" | grep -qx /etc/crowdwall/crowdwall.toml || fail "rpm: config not %config"
scripts=$(rpm -qp --scripts "$rpm")
for s in 'postinstall scriptlet' 'installer-address' 'preuninstall scriptlet' 'firewall remove' \
         'postuninstall scriptlet' 'rm -rf /var/lib/crowdwall'; do
  grep -q "$s" <<<"$scripts" || fail "rpm scripts lack '$s'"
done
reqs=$(rpm -qp --requires "$rpm")
for r in libnftnl libmnl systemd-libs; do grep -qx "$r" <<<"$reqs" || fail "rpm does not require $r"; done
ok "rpm $(basename "$rpm"): files, %config, scripts, requires"

# --- .deb ---------------------------------------------------------------------------------
dpkg-deb -f "$deb" Depends | grep -q libnftnl || fail "deb Depends lacks libnftnl"
for r in libmnl libsystemd; do dpkg-deb -f "$deb" Depends | grep -q "$r" || fail "deb Depends lacks $r"; done
# A leftover install would hide the fresh-install path.
if dpkg-query -W crowdwall >/dev/null 2>&1; then dpkg --purge crowdwall >/dev/null; fi
ns=shpkg$$
ip netns add "$ns"
daemon_pid=""
trap '[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null; ip netns del "$ns" 2>/dev/null || true' EXIT

# The install pretends to come from an SSH session, whose address the postinst allowlists.
SSH_CONNECTION="192.0.2.200 50022 192.0.2.1 22" dpkg -i "$deb" >/tmp/cw-install.$$ 2>&1 || fail "dpkg -i failed: $(cat /tmp/cw-install.$$)"
installed_out=$(cat /tmp/cw-install.$$); rm -f /tmp/cw-install.$$
# No systemd as PID 1 here: the install must say that nothing was started.
if [ ! -d /run/systemd/system ]; then
  grep -q "service was NOT started" <<<"$installed_out" || fail "install without systemd did not say the service was not started: $installed_out"
  grep -q "crowdwall run" <<<"$installed_out" || fail "install without systemd did not say what to run: $installed_out"
  out=$(crowdwall status 2>&1) && fail "status answered with no daemon: $out"
  [ "$(grep -o 'No such file or directory' <<<"$out" | wc -l)" = 1 ] || fail "status names the cause more than once: $out"
  grep -q systemctl <<<"$out" && fail "status hints at systemctl without systemd: $out"
  ok "install without systemd says nothing was started; status says to run 'crowdwall run'"
fi
dpkg-query -W -f='${Status}' crowdwall | grep -q 'install ok installed' || fail "not installed"
for f in /usr/bin/crowdwall /etc/crowdwall/crowdwall.toml /usr/lib/systemd/system/crowdwall.service \
         /usr/share/man/man1/crowdwall.1.gz /usr/share/man/man1/crowdwall-decisions-delete.1.gz \
         /usr/share/bash-completion/completions/crowdwall \
         /usr/share/zsh/vendor-completions/_crowdwall /usr/share/fish/vendor_completions.d/crowdwall.fish; do
  [ -e "$f" ] || fail "installed package lacks $f"
done
dpkg-query -W -f='${Conffiles}' crowdwall | grep -q /etc/crowdwall/crowdwall.toml || fail "config is not a conffile"
[ "$(stat -c %a /var/lib/crowdwall)" = 700 ] || fail "state directory not created 0700"
grep -qx 192.0.2.200 /etc/crowdwall/allowlist.d/installer.list || fail "installer address not allowlisted"
[ -L /etc/systemd/system/multi-user.target.wants/crowdwall.service ] || fail "unit not enabled"
version=$(crowdwall --version) && grep -q "^crowdwall " <<<"$version" || fail "crowdwall --version: $version"
crowdwall check-config >/dev/null || fail "check-config on the installed config"
checked=$(crowdwall check-config --json)
grep -q '"192.0.2.200/32"' <<<"$checked" || fail "check-config does not see the drop-in: $checked"
unit=/usr/lib/systemd/system/crowdwall.service
out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for crowdwall.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no security score"
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || fail "security score $score > 3.0"
ok "deb installed: files, conffile, Depends, state dir, allowlist drop-in, --version, check-config, unit verified, security $score"

# A decision made by the installed daemon (in a namespace of its own) survives an upgrade.
sock=/run/crowdwall/crowdwall.sock
start_daemon() {
  # `ip netns exec` execs the daemon: $! is the daemon's pid.
  ip netns exec "$ns" crowdwall run >/dev/null 2>&1 &
  daemon_pid=$!
  for _ in $(seq 1 100); do crowdwall status >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "the installed daemon did not come up"
}
stop_daemon() { kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""; }
start_daemon
crowdwall decisions add 192.0.2.77 --duration 1h --reason package-check >/dev/null
stop_daemon
echo "# admin's own edit" >> /etc/crowdwall/allowlist.d/installer.list
SSH_CONNECTION="198.51.100.99 50022 192.0.2.1 22" dpkg -i "$deb" >/dev/null || fail "upgrade (dpkg -i again) failed"
grep -q "admin's own edit" /etc/crowdwall/allowlist.d/installer.list || fail "upgrade rewrote the drop-in"
grep -q 198.51.100.99 /etc/crowdwall/allowlist.d/installer.list && fail "upgrade added the upgrader's address"
start_daemon
listed=$(crowdwall decisions list --json)
grep -q '"192.0.2.77"' <<<"$listed" || fail "decision lost across the upgrade: $listed"
stop_daemon
ip netns exec "$ns" nft list table inet crowdwall >/dev/null 2>&1 || fail "no table before purge"
ok "upgrade keeps decisions and the drop-in"

# Every page crowdwall.1 refers to is installed.
for ref in $(zcat /usr/share/man/man1/crowdwall.1.gz | grep -o 'crowdwall\\-[a-z\\-]*(1)' | sed 's/\\-/-/g; s/(1)//' | sort -u); do
  [ -e "/usr/share/man/man1/$ref.1.gz" ] || fail "crowdwall.1 refers to $ref(1), which is not installed"
done
ok "every man page crowdwall.1 refers to is installed"

# A hub on the same machine keeps its database in its own state directory: purging the host
# package must not touch it.
mkdir -p /var/lib/crowdwall-hub
echo keep > /var/lib/crowdwall-hub/hub.db.check
# Purge (in the namespace, where the table is): everything goes.
ip netns exec "$ns" dpkg --purge crowdwall >/dev/null || fail "dpkg --purge failed"
[ "$(cat /var/lib/crowdwall-hub/hub.db.check 2>/dev/null)" = keep ] || fail "purging crowdwall touched /var/lib/crowdwall-hub"
rm -f /var/lib/crowdwall-hub/hub.db.check
dpkg-query -W -f='${Status}' crowdwall 2>/dev/null | grep -q ' installed$' && fail "still installed after purge"
for f in /usr/bin/crowdwall /usr/lib/systemd/system/crowdwall.service /etc/crowdwall /var/lib/crowdwall \
         /etc/systemd/system/multi-user.target.wants/crowdwall.service "$sock"; do
  [ -e "$f" ] && fail "$f left after purge"
done
ip netns exec "$ns" nft list table inet crowdwall >/dev/null 2>&1 && fail "nftables table left after purge"
ok "purge removed binary, unit, config, drop-in, state and the table"

# --- crowdwall-hub: its own package, unit and config; the host's package carries no hub -----
dpkg-deb -c "$deb" | grep -q crowdwall-hub && fail "the host package carries the hub"
# The host binary links no PostgreSQL client and no hub code (tokio-postgres is pure Rust, so
# it would show in the binary's strings, not in ldd).
grep -q tokio_postgres "$tdir/release/crowdwall" && fail "the host binary contains tokio-postgres"
files=$(rpm -qlp "$hub_rpm")
for f in /usr/bin/crowdwall-hub /etc/crowdwall-hub/hub.toml /usr/lib/systemd/system/crowdwall-hub.service; do
  grep -qx "$f" <<<"$files" || fail "hub rpm lacks $f"
done
rpm -qp --configfiles "$hub_rpm" | grep -qx /etc/crowdwall-hub/hub.toml || fail "hub rpm: config not %config"
ok "hub rpm $(basename "$hub_rpm"): files, %config"
if dpkg-query -W crowdwall-hub >/dev/null 2>&1; then dpkg --purge crowdwall-hub >/dev/null; fi
dpkg -i "$hub_deb" >/dev/null || fail "dpkg -i crowdwall-hub failed"
for f in /usr/bin/crowdwall-hub /etc/crowdwall-hub/hub.toml /usr/lib/systemd/system/crowdwall-hub.service; do
  [ -e "$f" ] || fail "installed hub package lacks $f"
done
dpkg-query -W -f='${Conffiles}' crowdwall-hub | grep -q /etc/crowdwall-hub/hub.toml || fail "hub config is not a conffile"
[ -L /etc/systemd/system/multi-user.target.wants/crowdwall-hub.service ] || fail "hub unit not enabled"
crowdwall-hub --version | grep -q '^crowdwall-hub ' || fail "crowdwall-hub --version"
crowdwall-hub check-config >/dev/null || fail "crowdwall-hub check-config on the installed config"
hub_unit=/usr/lib/systemd/system/crowdwall-hub.service
out=$(systemd-analyze verify "$hub_unit" 2>&1) || fail "systemd-analyze verify (hub): $out"
hub_score=$(systemd-analyze security --offline=true "$hub_unit" 2>/dev/null | sed -n 's/.*Overall exposure level for crowdwall-hub.service: \([0-9.]*\).*/\1/p')
[ -n "$hub_score" ] || fail "no security score for the hub"
awk -v s="$hub_score" 'BEGIN { exit !(s <= 3.0) }' || fail "hub security score $hub_score > 3.0"
hub_libs=$(ldd /usr/bin/crowdwall-hub)
grep -q libpq <<<"$hub_libs" && fail "the hub links libpq"
dpkg --purge crowdwall-hub >/dev/null || fail "dpkg --purge crowdwall-hub failed"
for f in /usr/bin/crowdwall-hub /etc/crowdwall-hub /usr/lib/systemd/system/crowdwall-hub.service; do
  [ -e "$f" ] && fail "$f left after the hub's purge"
done
ok "hub deb: files, conffile, enabled unit, --version, check-config, unit verified, security $hub_score, purge"
echo "package check: all ok"

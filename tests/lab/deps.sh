#!/usr/bin/env bash
# Installs what crowdwall builds with (`deps.sh build`) or builds and tests with
# (`deps.sh test`) on Debian 12, and starts a real journald when systemd is not PID 1
# (containers, CI). Idempotent; needs root.
set -euo pipefail
mode=${1:-test}

need_pkgs=(build-essential pkg-config libnftnl-dev libmnl-dev libsystemd-dev nftables iproute2)
if [ "$mode" = test ]; then
  # real sshd and an attacker client for the end-to-end test, journal-remote for journal
  # fixtures, fail2ban for the benchmark's baseline.
  need_pkgs+=(openssh-server openssh-client sshpass systemd-journal-remote fail2ban
              python3 procps psmisc time iputils-ping netcat-openbsd)
  # real nginx and curl for the web end-to-end test (fail2ban above also provides the
  # annotated test logs of the conformance harness)
  need_pkgs+=(nginx curl)
  # CrowdSec interop (issue 6): the Local API and cscli, the firewall bouncer, curl and
  # openssl for the bouncer API tests, pip for pycrowdsec.
  need_pkgs+=(crowdsec crowdsec-firewall-bouncer curl openssl python3-pip)
  # crowdsec's postinst registers with the central API unless this file is non-empty; the
  # tests run it offline (Local API only), and CI has no route to the central API.
  mkdir -p /etc/crowdsec
  [ -s /etc/crowdsec/online_api_credentials.yaml ] ||
    echo '# offline: no central API (crowdwall test lab)' > /etc/crowdsec/online_api_credentials.yaml
  # community hub: a real PostgreSQL for the store tests, Chromium for the page check.
  need_pkgs+=(postgresql chromium chromium-driver)
fi
# shellcheck source=tests/lab/apt.sh
. "$(dirname "$0")/apt.sh"
apt_install_missing deps "${need_pkgs[@]}"

if [ "$mode" = test ] && ! python3 -c 'import pycrowdsec.client' 2>/dev/null; then
  echo "deps: installing pycrowdsec (PyPI)"
  python3 -m pip install -q --break-system-packages pycrowdsec==0.0.5 2>/dev/null ||
    python3 -m pip install -q pycrowdsec==0.0.5
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "deps: cargo not found: install a Rust toolchain (rustup) first" >&2; exit 1; }

# A real journald. Under systemd it is already running; elsewhere start it standalone (it
# stays in the foreground). The socket file alone proves nothing: a killed journald leaves it
# behind, so readiness is a write that succeeds.
journal_ok() { systemd-cat -t crowdwall-deps true >/dev/null 2>&1; }
if ! journal_ok; then
  echo "deps: starting systemd-journald standalone"
  mkdir -p /run/systemd/journal
  /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 100); do journal_ok && break; sleep 0.1; done
  journal_ok || { echo "deps: journald did not start" >&2; exit 1; }
fi
# syslog(3) writers such as sshd log through /dev/log: point it at journald.
if [ -S /run/systemd/journal/dev-log ] && [ ! -S /dev/log ]; then
  ln -sf /run/systemd/journal/dev-log /dev/log
fi
if [ "$mode" = test ]; then
  # host keys and privilege-separation directory for the end-to-end test's sshd.
  ssh-keygen -A >/dev/null
  mkdir -p /run/sshd
fi
if [ "$mode" = test ]; then
  # PostgreSQL for the hub tests (tests/suite/hub.rs): Debian's cluster, started without systemd,
  # on port 5432, with a role that may create the tests' throw-away databases.
  pgver=$(ls /usr/lib/postgresql | sort -V | tail -1)
  pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$pgver main$" || pg_createcluster "$pgver" main >/dev/null
  pg_ctlcluster "$pgver" main status >/dev/null 2>&1 || pg_ctlcluster "$pgver" main start
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "deps: PostgreSQL did not start" >&2; exit 1; }
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'crowdwall'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"CREATE ROLE crowdwall LOGIN CREATEDB PASSWORD 'crowdwall'\""
fi

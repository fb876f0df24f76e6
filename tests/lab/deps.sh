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
fi
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps package scripts from starting sshd/fail2ban as services.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
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

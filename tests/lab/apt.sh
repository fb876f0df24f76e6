# Sourced by tests/lab/deps.sh and tests/qemu/run.sh (bash, as root, on Debian):
#   apt_install_missing LABEL PACKAGE...
# installs those of the packages dpkg does not list as installed, in one apt-get call, with
# package scripts kept from starting services (policy-rc.d); LABEL prefixes its one line.
apt_install_missing() {
  local label=$1 p
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "$label: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps package scripts from starting sshd/fail2ban/... as services.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  local rc=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  rm -f /usr/sbin/policy-rc.d
  return $rc
}

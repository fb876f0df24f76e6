#!/usr/bin/env bash
# Runs a command under systemd/crowdwall.service's sandbox, as far as it can be reproduced
# without systemd as PID 1:
#   ProtectSystem=strict (+ StateDirectory/RuntimeDirectory): a private mount namespace where
#     every mount is read-only except /proc, /sys, /dev and the writable directories given;
#   CapabilityBoundingSet=CAP_NET_ADMIN: the bounding set cut to CAP_NET_ADMIN (as root, the
#     process then holds exactly that one capability);
#   NoNewPrivileges=yes.
# Not reproduced: the seccomp filter, ProtectProc, PrivateDevices, namespace restrictions.
# Usage: sandbox.sh WRITABLE_DIR... -- COMMAND [ARG...]
set -euo pipefail
if [ "${1:-}" != --inside ]; then
  exec unshare --mount --propagation private -- "$0" --inside "$@"
fi
shift
rw=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do rw+=("$1"); shift; done
[ "${1:-}" = -- ] || { echo "usage: sandbox.sh WRITABLE_DIR... -- COMMAND [ARG...]" >&2; exit 2; }
shift
for d in "${rw[@]}"; do
  mkdir -p "$d"
  mount --bind "$d" "$d"
done
# Every mount point, read-only (per mount: MS_REMOUNT|MS_BIND|MS_RDONLY leaves the filesystem
# itself alone). API filesystems stay as they are, as under systemd.
while read -r _ _ _ _ mp _; do
  case "$mp" in
    /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;;
    *\\*) continue ;; # octal-escaped names: none of ours
  esac
  if ! mount -o remount,bind,ro "$mp" 2>/dev/null; then
    [ "$mp" = / ] && { echo "sandbox: cannot make / read-only" >&2; exit 1; }
  fi
done < /proc/self/mountinfo
for d in "${rw[@]}"; do
  mount -o remount,bind,rw "$d"
done
exec setpriv --bounding-set -all,+net_admin --inh-caps -all --no-new-privs -- "$@"

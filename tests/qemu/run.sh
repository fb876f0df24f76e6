#!/usr/bin/env bash
# Runs an integration test binary inside a VM booted on Debian 12's own 6.1 kernel, so the
# netlink code meets the kernel Debian 12 hosts run (the machine's kernel may be much newer).
#
#   tests/qemu/run.sh [--bin PATH | --test NAME] [--] [ARGS FOR THE TEST BINARY...]
#
# Default: `--test netlink`, built with `cargo test --release --no-run`. ARGS are passed to the
# libtest binary after `--test-threads=1` (a name filter, `--exact`, `--skip X`, ...). Inside the
# VM the tests run as root with CROWDWALL_REQUIRE_ROOT_TESTS=1 (a missing prerequisite fails).
#
# Needs root on Debian 12 (installs qemu-system-x86, cpio, kmod, nftables, iproute2,
# iputils-ping; downloads linux-image-6.1.0-*-amd64 and busybox-static with `apt-get download`).
# Uses KVM when /dev/kvm is usable, else software emulation (TCG); CROWDWALL_QEMU_ACCEL=tcg
# forces TCG. Downloads and the unpacked kernel are cached under target/qemu/. The VM's console
# goes to stdout and target/qemu/last.log. Exit status: the test binary's, or 1 when the VM
# did not report one (boot failure, timeout after CROWDWALL_QEMU_TIMEOUT seconds, default 1200).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache="$repo/target/qemu"
accel=${CROWDWALL_QEMU_ACCEL:-auto}
timeout_s=${CROWDWALL_QEMU_TIMEOUT:-1200}

bin="" test_name=netlink
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$(realpath "$2"); shift 2 ;;
    --test) test_name=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
test_args=("$@")
say() { echo "qemu: $*" >&2; }

# --- host packages -------------------------------------------------------------------------
need=(qemu-system-x86 cpio kmod gzip nftables iproute2 iputils-ping)
# shellcheck source=tests/lab/apt.sh
. "$repo/tests/lab/apt.sh"
apt_install_missing qemu "${need[@]}"

# --- the test binary -----------------------------------------------------------------------
if [ -z "$bin" ]; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  say "building test binary '$test_name' (release)"
  # The compiler-artifact line of the test target names its executable.
  bin=$(cd "$repo" && { cargo test -q --release --locked --test "$test_name" --no-run \
          --message-format=json || true; } |
        grep '"reason":"compiler-artifact"' | grep "\"kind\":\[\"test\"\]" |
        grep "\"name\":\"$test_name\"" | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | tail -1 || true)
  [ -n "$bin" ] || { say "cargo did not build a test named '$test_name'"; exit 1; }
fi
[ -x "$bin" ] || { say "not an executable: $bin"; exit 1; }

# --- Debian 12's kernel and busybox, cached --------------------------------------------------
mkdir -p "$cache/debs"
# linux-image-amd64 in bookworm depends on the current ABI's package; fall back to the highest
# linux-image-6.1.0-N-amd64 the archive lists.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       grep -o 'linux-image-6\.1\.0-[0-9]*-amd64' | head -1 || true)
if [ -z "$kpkg" ]; then
  kpkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
         cut -d' ' -f1 | sort -V | tail -1)
fi
if [ -z "$kpkg" ] && ls "$cache"/debs/linux-image-6.1.0-*-amd64_*.deb >/dev/null 2>&1; then
  kpkg=$(basename "$(ls "$cache"/debs/linux-image-6.1.0-*-amd64_*.deb | sort -V | tail -1)" | cut -d_ -f1)
fi
[ -n "$kpkg" ] || { say "no linux-image-6.1.0-*-amd64 in the apt sources (apt-get update?)"; exit 1; }
kver=${kpkg#linux-image-}
fetch_deb() { # package -> path of its .deb in the cache
  local f
  f=$(ls "$cache"/debs/"$1"_*.deb 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$f" ]; then
    (cd "$cache/debs" && apt-get download -q "$1" >/dev/null 2>&1) || { say "apt-get download $1 failed"; exit 1; }
    f=$(ls "$cache"/debs/"$1"_*.deb | sort -V | tail -1)
  fi
  echo "$f"
}
kdeb=$(fetch_deb "$kpkg")
bbdeb=$(fetch_deb busybox-static)
[ -f "$kdeb" ] && [ -f "$bbdeb" ] || exit 1
kroot="$cache/kernel-$kver"
if [ ! -f "$kroot/.done" ]; then
  say "unpacking $(basename "$kdeb")"
  rm -rf "$kroot"; mkdir -p "$kroot"
  dpkg-deb -x "$kdeb" "$kroot"
  # The package ships no modules.dep (its postinst runs depmod): make one.
  depmod -b "$kroot" "$kver"
  touch "$kroot/.done"
fi
bbroot="$cache/busybox"
if [ ! -x "$bbroot/bin/busybox" ]; then
  rm -rf "$bbroot"; dpkg-deb -x "$bbdeb" "$bbroot"
fi
moddir="$kroot/lib/modules/$kver"

# Modules: every nf_tables expression/set/object module, the nf_reject helpers, veth, and
# whatever they depend on (modules.dep). Loaded up front so nothing relies on auto-loading;
# modprobe is still there for what the kernel requests on its own.
mods=()
while read -r m; do mods+=("$m"); done < <(
  cd "$moddir" && find kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter \
    kernel/net/bridge/netfilter kernel/drivers/net -regextype posix-extended \
    -regex '.*/(nf_tables|nfnetlink|nft_[a-z0-9_]+|nf_reject_ipv[46]|veth)\.ko(\.xz|\.zst|\.gz)?' |
    sort)
[ ${#mods[@]} -gt 0 ] || { say "no netfilter modules found under $moddir"; exit 1; }
declare -A seen=()
order=()
resolve() { # module name or alias (modules.softdep speaks both) -> module paths
  local n=${1//-/_}
  awk -F: -v n="$n" '{ b = $1; sub(/.*\//, "", b); sub(/\.ko.*/, "", b); gsub(/-/, "_", b)
                        if (b == n) print $1 }' "$moddir/modules.dep"
  awk -v n="$1" '$1 == "alias" && $2 == n { print $3 }' "$moddir/modules.alias" |
    while read -r t; do [ "$t" != "$1" ] && resolve "$t"; done
}
add_mod() { # depth-first: soft and hard dependencies before the module
  local m=$1 d name
  [ -n "${seen[$m]:-}" ] && return
  seen[$m]=1
  name=$(basename "$m"); name=${name%%.ko*}
  # libcrc32c, for one, needs a crc32c implementation it only names as a soft dependency.
  for d in $(awk -v n="$name" '$1 == "softdep" && $2 == n {
               for (i = 3; i <= NF; i++) { if ($i == "pre:") pre = 1; else if ($i == "post:") pre = 0; else if (pre) print $i } }' \
             "$moddir/modules.softdep"); do
    for r in $(resolve "$d"); do add_mod "$r"; done
  done
  for d in $(awk -v m="$m:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$moddir/modules.dep"); do
    add_mod "$d"
  done
  order+=("$m")
}
for m in "${mods[@]}"; do add_mod "$m"; done

# --- initramfs -------------------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,bb,proc,sys,dev,run,tmp,root,etc,test}
ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
cp "$bbroot/bin/busybox" "$root/bb/busybox"
copy_with_libs() { # file to the same path inside the image, with every library ldd names
  local f=$1 dest=$2 lib
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$f" "$root$dest"
  for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
copy_with_libs "$bin" /test/test-binary
for t in ip nft ping; do
  p=$(command -v "$t") || { say "$t not found on the host"; exit 1; }
  copy_with_libs "$p" "$(realpath "$p")"
done
for f in /etc/protocols /etc/services /etc/ethertypes; do [ -f "$f" ] && cp "$f" "$root/etc/"; done
[ -d /etc/iproute2 ] && cp -r /etc/iproute2 "$root/etc/"
[ -d /usr/share/iproute2 ] && mkdir -p "$root/usr/share" && cp -r /usr/share/iproute2 "$root/usr/share/"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\nprotocols: files\nservices: files\n' > "$root/etc/nsswitch.conf"
mkdir -p "$root/lib/modules/$kver"
for m in "${order[@]}"; do
  mkdir -p "$root/lib/modules/$kver/$(dirname "$m")"
  cp "$moddir/$m" "$root/lib/modules/$kver/$m"
done
cp "$moddir"/modules.{dep,alias,symbols,builtin,order} "$root/lib/modules/$kver/" 2>/dev/null || true
cp "$moddir"/modules.*.bin "$root/lib/modules/$kver/" 2>/dev/null || true
printf '%s\n' "${order[@]}" > "$root/test/modules"
: > "$root/test/args"
for a in "${test_args[@]}"; do printf '%s\n' "$a" >> "$root/test/args"; done

cat > "$root/init" <<'EOF'
#!/bb/busybox sh
# PID 1 of the test VM: mounts, loads modules, runs the test binary, reports, powers off.
/bb/busybox --install -s /bb
export PATH=/usr/sbin:/usr/bin:/bb HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns
echo /bb/modprobe > /proc/sys/kernel/modprobe
kver=$(uname -r)
while read -r m; do
  insmod "/lib/modules/$kver/$m" 2>/tmp/insmod.err || {
    grep -q 'File exists' /tmp/insmod.err || echo "qemu-vm: insmod $m: $(cat /tmp/insmod.err)"; }
done < /test/modules
dmesg | grep -iE 'unknown symbol|disagrees about' | head -20
ip link set lo up
echo "qemu-vm: kernel $(uname -r) $(uname -v); $(dmesg | grep -o 'Hypervisor detected: .*' || echo 'no hypervisor signature (TCG)')"
set --
while IFS= read -r a; do set -- "$@" "$a"; done < /test/args
echo "qemu-vm: running test binary --test-threads=1 $*"
cd /test
CROWDWALL_REQUIRE_ROOT_TESTS=1 RUST_BACKTRACE=1 /test/test-binary --test-threads=1 "$@"
rc=$?
echo "CROWDWALL-QEMU-RESULT kernel=$(uname -r) exit=$rc"
sync
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"
say "kernel $kver, initramfs $(du -h "$work/initrd.gz" | cut -f1), ${#order[@]} modules"

# --- boot ----------------------------------------------------------------------------------
log="$cache/last.log"
# The VM's console streams to stdout and into $log. Returns qemu's (or timeout's) status.
boot() { # accel args...
  : > "$log"
  rm -f "$work/qemu.pid"
  timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 "$@" -m 2048 -smp 2 \
    -nographic -no-reboot -nic none -pidfile "$work/qemu.pid" \
    -kernel "$kroot/boot/vmlinuz-$kver" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=4 mitigations=off" \
    < /dev/null 2>&1 | tr -d '\r' | sed -u 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' > "$log" &
  local pipe=$! waited=0
  tail -n +1 -f --pid="$pipe" "$log" &
  local tailpid=$!
  if [ "$1" = "-accel" ] && [ "$2" = kvm ]; then
    # Nested KVM can hang the guest silently: give it 60 s to reach /init, else give up on it.
    while ! grep -aq '^qemu-vm: kernel' "$log" && kill -0 "$pipe" 2>/dev/null && [ $waited -lt 60 ]; do
      sleep 1; waited=$((waited + 1))
    done
    if ! grep -aq '^qemu-vm: kernel' "$log" && [ -s "$work/qemu.pid" ]; then
      kill "$(cat "$work/qemu.pid")" 2>/dev/null || true
    fi
  fi
  local rc=0
  wait "$pipe" || rc=$?
  wait "$tailpid" 2>/dev/null || true
  return $rc
}
kvm_broken="$cache/kvm-broken-$(uname -r)"
start=$(date +%s)
qrc=0
if [ "$accel" != tcg ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -e "$kvm_broken" ]; then
  boot -accel kvm -cpu host || qrc=$?
  if ! grep -aq '^qemu-vm: kernel' "$log"; then
    say "KVM did not boot the VM (remembered in $kvm_broken); falling back to software emulation"
    touch "$kvm_broken"
    start=$(date +%s)
    qrc=0
    boot -accel tcg -cpu max || qrc=$?
  fi
else
  boot -accel tcg -cpu max || qrc=$?
fi
secs=$(( $(date +%s) - start ))
result=$(grep -a '^CROWDWALL-QEMU-RESULT ' "$log" | tail -1 || true)
if [ -z "$result" ]; then
  say "FAILED: the VM reported no result after ${secs}s (qemu status $qrc; 124 is the ${timeout_s}s timeout)"
  rc=1
else
  rc=${result##*exit=}
  say "$result, boot+run ${secs}s"
  case "$result" in
    *" kernel=6.1."*) ;;
    *) say "the VM did not run a 6.1 kernel"; rc=1 ;;
  esac
fi
if [ "$rc" = 0 ]; then
  say "PASSED"
else
  say "FAILED (exit $rc)"
  # A VM that died before libtest's summary still counts as a failure in tests/run.sh's tally.
  grep -aq '^test result: FAILED' "$log" ||
    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out (qemu: no summary from the VM)"
fi
exit "$rc"

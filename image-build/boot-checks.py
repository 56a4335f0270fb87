#!/usr/bin/env python3
"""The checks boot-image.sh runs against a box booted in QEMU, from the host, as a camera, a guest
and an operator use it. Standard library only (the host needs no venv). Prints one line per check
with its time; exits 1 at the first failure, saying what failed.

SSH as root with the key put on the boot partition; the admin token from first boot's greeting on
the serial console; an event and a camera key over the admin API (Bearer token), a second key over
SSH with the CLI; a JPEG over FTP and another over explicit FTPS (TLS on the data channel too,
verified against the box's own CA); both indexed; a selfie of the first photo's person searched on
the guest JSON API (that photo found, the other not); /metrics read with the token (401 without).
"""

from __future__ import annotations

import argparse
import ftplib
import hashlib
import json
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HOST = "127.0.0.1"
T0 = time.monotonic()


def say(message: str) -> None:
    print(f"boot-checks: [{time.monotonic() - T0:6.1f} s] {message}", flush=True)


def fail(message: str) -> None:
    print(f"boot-checks: FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


class Box:
    def __init__(self, args: argparse.Namespace) -> None:
        self.work = Path(args.work)
        self.args = args
        self.token = ""

    def ssh(self, command: str, timeout: float = 300) -> str:
        argv = [
            "ssh", "-i", str(self.work / "id_ed25519"), "-p", str(self.args.ssh_port),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={self.work / 'known_hosts'}", "-o", "ConnectTimeout=30",
            f"root@{HOST}", command,
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            fail(f"ssh {command!r}: exit {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def admin(self, method: str, path: str, body: object = None, token: str | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{HOST}:{self.args.admin_port}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token if token is None else token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=120) as answer:
            raw = answer.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def refused(self, path: str, token: str, what: str) -> None:
        """GET ``path`` with ``token`` must be answered 401 (``what``: how the check says it)."""
        try:
            self.admin("GET", path, token=token)
            fail(f"{what} was answered")
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                fail(f"{what} got {exc.code}, not 401")


def console_token(work: Path) -> str | None:
    """The admin token from first boot's greeting on the serial console (the line after it)."""
    lines = (work / "console.log").read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if "Admin API token" in line and i + 1 < len(lines):
            return lines[i + 1].strip() or None
    return None


def upload(ftp: ftplib.FTP, path: Path) -> None:
    with path.open("rb") as f:
        reply = ftp.storbinary(f"STOR {path.name}", f)
    if not reply.startswith("226"):
        fail(f"upload of {path.name}: {reply}")


def multipart(field: str, name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    for name in ("ssh", "ftp", "web", "admin"):
        parser.add_argument(f"--{name}-port", type=int, required=True)
    parser.add_argument("--faces", required=True, help="folder with obama-1.jpg, obama-2.jpg, biden-1.jpg")
    parser.add_argument("--index-timeout", type=float, default=900)
    parser.add_argument("--compare-identity", metavar="IDENTITY_JSON", help="another fresh copy's identity.json")
    parser.add_argument("--powercut-load", type=int, metavar="QEMU_PID", help="upload frames, kill QEMU mid-upload")
    parser.add_argument("--powercut-verify", action="store_true", help="after the power cut: every acked frame there")
    args = parser.parse_args()
    if args.compare_identity:
        compare_identity(Path(args.work) / "identity.json", Path(args.compare_identity))
        return
    if args.powercut_load:
        powercut_load(args, args.powercut_load)
        return
    if args.powercut_verify:
        powercut_verify(args)
        return
    faces = Path(args.faces)
    photo, other, selfie = faces / "obama-1.jpg", faces / "biden-1.jpg", faces / "obama-2.jpg"
    for path in (photo, other, selfie):
        if not path.is_file():
            fail(f"{path} is not there (the face photos, ../shared/faces beside the checkout)")
    box = Box(args)

    # SSH, with the key first boot took from the boot partition; what first boot did.
    facts = box.ssh(
        "hostname; cat /etc/machine-id; ls /var/lib/shutterbox-firstboot.done; "
        "ls /boot/firmware/authorized_keys 2>/dev/null || echo key-file-removed; "
        "findmnt -n -o SOURCE /; lsblk -b -n -o SIZE \"$(findmnt -n -o SOURCE /)\"; "
        "lsblk -b -d -n -o SIZE /dev/vda; df -B1M --output=size / | tail -1; "
        "cat /sys/class/block/\"$(basename \"$(findmnt -n -o SOURCE /)\")\"/start; "
        "ls /etc/ssh/ssh_host_ed25519_key; systemctl is-active shutterbox shutterbox-firstboot; uname -r -m"
    ).split()
    hostname, machine_id = facts[0], facts[1]
    if not re.fullmatch(r"shutterbox-[0-9a-f]{4}", hostname) or not machine_id.startswith(hostname[-4:]):
        fail(f"host name {hostname} does not come from the machine id {machine_id}")
    if "key-file-removed" not in facts:
        fail("first boot left authorized_keys on the boot partition")
    part_bytes, disk_bytes, part_start = int(facts[5]), int(facts[6]), int(facts[8]) * 512
    if disk_bytes - (part_start + part_bytes) > 16 << 20:
        fail(
            f"first boot did not grow the root: partition {part_bytes >> 20} MiB at {part_start >> 20} MiB "
            f"on a disk of {disk_bytes >> 20} MiB"
        )
    say(
        f"ssh root@ with the boot partition's key: {hostname} (machine id {machine_id[:8]}...), "
        f"{facts[-2]} {facts[-1]}, root {facts[4]} grown to {part_bytes >> 20} of {disk_bytes >> 20} MiB "
        f"(ext4 {facts[7]} MiB), host keys made, shutterbox and first boot active"
    )

    # The admin token: printed by first boot on the console (the serial port here).
    token = console_token(box.work)
    source = "first boot's greeting on the serial console"
    if not token:
        token = box.ssh("cat /run/shutterbox/first-boot-token").strip()
        source = "/run/shutterbox/first-boot-token (over SSH)"
    box.token = token
    box.refused("/api/status", "not-the-token", "the admin API with a wrong token")
    status = box.admin("GET", "/api/status")
    assert isinstance(status, dict)
    say(f"admin API on the forwarded port: 401 with a wrong token, status with the token from {source}")

    event = box.admin("POST", "/api/events", {"name": "QEMU boot check"})
    assert isinstance(event, dict)
    code = event["code"]
    key = box.admin("POST", "/api/keys", {"event": code, "camera": "qemu ftp"})
    assert isinstance(key, dict)
    cli = box.ssh(
        f"runuser -u shutterbox -- shutterbox key create --event {code} --camera 'qemu ftps' --json "
        "--data /var/lib/shutterbox"
    )
    key2 = json.loads(cli)
    say(f"event {code}; camera key {key['username']} over the admin API, {key2['username']} over SSH (CLI)")

    # A camera: plain FTP, then explicit FTPS with TLS on the data channel, checked against the CA.
    start = time.monotonic()
    with ftplib.FTP() as ftp:
        ftp.connect(HOST, args.ftp_port, timeout=120)
        ftp.login(key["username"], key["password"])
        ftp.set_pasv(True)
        upload(ftp, photo)
    say(f"FTP: {photo.name} ({photo.stat().st_size} bytes) uploaded in {time.monotonic() - start:.1f} s")
    ca = box.admin("GET", "/api/tls/ca.crt")
    assert isinstance(ca, str)
    context = ssl.create_default_context(cadata=ca)
    context.check_hostname = False  # the certificate names the box, not 127.0.0.1 (QEMU's forward)
    start = time.monotonic()
    with ftplib.FTP_TLS(context=context) as ftps:
        ftps.connect(HOST, args.ftp_port, timeout=120)
        ftps.login(key2["username"], key2["password"])  # AUTH TLS first
        ftps.prot_p()
        ftps.set_pasv(True)
        upload(ftps, other)
        cipher = ftps.sock.cipher()
    say(
        f"FTPS (explicit, PROT P, {cipher[1] if cipher else '?'}, server certificate verified against the "
        f"box's CA): {other.name} uploaded in {time.monotonic() - start:.1f} s"
    )

    # Both photos stored intact and indexed by the box's face workers.
    wanted = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in (photo, other)}
    start = time.monotonic()
    while True:
        photos = box.admin("GET", f"/api/photos?event={code}")
        assert isinstance(photos, list)
        by_hash = {p["sha256"]: p for p in photos}
        if set(wanted) <= set(by_hash) and all(by_hash[h]["faces_state"] in ("done", "failed") for h in wanted):
            break
        if time.monotonic() - start > args.index_timeout:
            fail(f"photos not indexed after {args.index_timeout:.0f} s: {photos}")
        time.sleep(5)
    for digest, name in wanted.items():
        if by_hash[digest]["faces_state"] != "done":
            fail(f"{name}: face indexing {by_hash[digest]['faces_state']}: {by_hash[digest]['faces_error']}")
    photo_id = by_hash[hashlib.sha256(photo.read_bytes()).hexdigest()]["id"]
    other_id = by_hash[hashlib.sha256(other.read_bytes()).hexdigest()]["id"]
    say(f"both photos stored byte for byte (SHA-256) and indexed in {time.monotonic() - start:.1f} s")

    # A guest: the selfie (another photo of the same person) on the guest JSON API.
    body, content_type = multipart("selfie", selfie.name, selfie.read_bytes())
    request = urllib.request.Request(
        f"http://{HOST}:{args.web_port}/api/events/{code}/search", data=body, method="POST"
    )
    request.add_header("Content-Type", content_type)
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=300) as answer:
        found = json.loads(answer.read())
    ids = [m["photo_id"] for m in found["matches"]]
    if photo_id not in ids:
        fail(f"the selfie {selfie.name} did not find {photo.name} (photo {photo_id}): {found}")
    if other_id in ids:
        fail(f"the selfie {selfie.name} also found {other.name} (photo {other_id}): {found}")
    score = next(m["score"] for m in found["matches"] if m["photo_id"] == photo_id)
    say(
        f"guest search with {selfie.name}: {photo.name} found (score {score:.3f}, {found['mode']}), "
        f"{other.name} not, in {time.monotonic() - start:.1f} s"
    )

    # /metrics: the token needed, the box's counters there.
    box.refused("/metrics", "", "/metrics without a token")
    metrics = box.admin("GET", "/metrics")
    assert isinstance(metrics, str)
    samples = [line for line in metrics.splitlines() if line and not line.startswith("#")]
    interesting = [line for line in samples if re.match(r"shutterbox_(frames|photos|uploads|faces)", line)]
    if not samples:
        fail("/metrics is empty")
    say(f"/metrics: {len(samples)} samples (401 without the token), e.g. " + "; ".join(interesting[:4]))
    identity = box.ssh(
        "cat /etc/machine-id; hostname; ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2; "
        "cat /var/lib/shutterbox/admin-token.sha256 2>/dev/null | cut -c1-64 || echo none"
    ).split()
    record = {
        "machine_id": identity[0],
        "hostname": identity[1],
        "ssh_host_key": identity[2],
        "admin_token_sha256": identity[3],
        "ca_certificate_sha256": hashlib.sha256(ca.encode()).hexdigest(),
    }
    (box.work / "identity.json").write_text(json.dumps(record, indent=1) + "\n")
    state = {"token": token, "event": code, "username": key["username"], "password": key["password"]}
    (box.work / "state.json").write_text(json.dumps(state) + "\n")
    say("all checks passed")


def compare_identity(mine: Path, theirs: Path) -> None:
    """Two fresh copies of one image, each booted once: no identity in common."""
    a, b = json.loads(mine.read_text()), json.loads(theirs.read_text())
    same = [name for name in a if a[name] == b.get(name)]
    if same:
        fail(f"two fresh copies share {', '.join(same)}: {[a[n] for n in same]}")
    say(
        "first-boot identity differs from the other copy's in every item: "
        + "; ".join(f"{name} {a[name][:16]} vs {b[name][:16]}" for name in a)
    )


def frame(base: bytes, number: int) -> bytes:
    """A distinct, valid JPEG: a comment segment (COM) with the frame's number after SOI."""
    comment = f"shutterbox power-cut frame {number:04d}".encode()
    return base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]


def powercut_load(args: argparse.Namespace, qemu_pid: int) -> None:
    """Frames over FTP one after another, each acknowledged (226) before the next; after at least
    8 and 20 s, the next one is sent halfway and QEMU is killed (SIGKILL) right there."""
    import os
    import signal

    work = Path(args.work)
    state = json.loads((work / "state.json").read_text())
    base = (Path(args.faces) / "obama-1.jpg").read_bytes()
    acked: list[dict[str, str]] = []
    start = time.monotonic()
    with ftplib.FTP() as ftp:
        ftp.connect(HOST, args.ftp_port, timeout=120)
        ftp.login(state["username"], state["password"])
        ftp.set_pasv(True)
        ftp.voidcmd("TYPE I")
        number = 0
        while True:
            data = frame(base, number)
            name = f"cut-{number:04d}.jpg"
            conn = ftp.transfercmd(f"STOR {name}")
            if len(acked) >= 8 and time.monotonic() - start > 20:
                conn.sendall(data[: len(data) // 2])
                os.kill(qemu_pid, signal.SIGKILL)  # the power cut, mid-frame
                (work / "powercut.json").write_text(
                    json.dumps({"acked": acked, "in_flight": {"name": name, "sha256": hashlib.sha256(data).hexdigest()}})
                )
                say(
                    f"power cut: QEMU killed {time.monotonic() - start:.1f} s in, halfway through {name}; "
                    f"{len(acked)} frames acknowledged before it (the last one a moment before)"
                )
                conn.close()
                return
            conn.sendall(data)
            conn.close()
            reply = ftp.voidresp()
            if not reply.startswith("226"):
                fail(f"upload of {name}: {reply}")
            acked.append({"name": name, "sha256": hashlib.sha256(data).hexdigest()})
            number += 1


def powercut_verify(args: argparse.Namespace) -> None:
    """After the power cut and a boot: every acknowledged frame is a photo of the event, its file
    intact (SHA-256 of the stored file, read over SSH); the half-sent frame is no photo."""
    box = Box(args)
    state = json.loads((box.work / "state.json").read_text())
    cut = json.loads((box.work / "powercut.json").read_text())
    box.token = state["token"]
    photos = box.admin("GET", f"/api/photos?event={state['event']}")
    assert isinstance(photos, list)
    by_hash = {p["sha256"]: p for p in photos}
    lost = [f["name"] for f in cut["acked"] if f["sha256"] not in by_hash]
    if lost:
        fail(f"acknowledged frames lost in the power cut: {lost}")
    paths = " ".join(by_hash[f["sha256"]]["stored_path"] for f in cut["acked"])
    sums = dict(line.split()[::-1] for line in box.ssh(f"sha256sum {paths}").splitlines())
    damaged = [f["name"] for f in cut["acked"] if sums.get(by_hash[f["sha256"]]["stored_path"]) != f["sha256"]]
    if damaged:
        fail(f"acknowledged frames whose stored file is damaged after the power cut: {damaged}")
    if cut["in_flight"]["sha256"] in by_hash:
        fail(f"the half-sent {cut['in_flight']['name']} became a photo with the full frame's hash")
    half = [p for p in photos if p["original_name"] == cut["in_flight"]["name"]]
    rejections = box.admin("GET", "/api/rejections")
    assert isinstance(rejections, list)
    said = [r["reason"] for r in rejections if r["original_name"] == cut["in_flight"]["name"]]
    say(
        f"after the power cut: all {len(cut['acked'])} acknowledged frames are photos, their files intact "
        f"(SHA-256 over SSH); the half-sent {cut['in_flight']['name']}: "
        + (f"a photo of {len(half)} record(s)" if half else "no photo")
        + (f", rejection recorded ({', '.join(said)})" if said else ", no rejection recorded")
    )


if __name__ == "__main__":
    main()

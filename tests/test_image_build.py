"""The SD-card image assembly (image-build/build-image.sh) and its checks (check-image.sh) on a
small hand-made root, in seconds and without mmdebstrap, loop devices or mounts: the layout, the
labels, repeatable output, the Raspberry Pi boot-file checks (which the host-architecture image of
`make image-check` skips), and that the checks catch what they are for. Also first boot's growing
of the root, where there is nothing to grow. `make image-check` does the real root (as root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

IMAGE_BUILD = Path(__file__).resolve().parents[1] / "image-build"
TOOLS = ("sfdisk", "mkfs.vfat", "mcopy", "mdir", "mkfs.ext4", "e2fsck", "debugfs", "fsck.vfat", "resize2fs")
pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in TOOLS),
    reason="needs fdisk, dosfstools, mtools and e2fsprogs",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="hiding /boot/firmware from mkfs needs root")
EPOCH = "1700000000"
KERNEL = "6.1.0-99-arm64"


def layout() -> dict[str, str]:
    text = (IMAGE_BUILD / "layout.sh").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)", text, re.MULTILINE))


def fake_root(tmp_path: Path, arch: str = "amd64") -> Path:
    """What build-image.sh and check-image.sh look at in a root from build-rootfs.sh."""
    labels = layout()
    root = tmp_path / "root"
    files = {
        "etc/fstab": (
            f"LABEL={labels['ROOT_LABEL']} / ext4 defaults,noatime,commit=60,errors=remount-ro 0 1\n"
            f"LABEL={labels['BOOT_LABEL']} /boot/firmware vfat defaults,noatime,nofail 0 2\n"
        ),
        "etc/machine-id": "",
        "etc/ssh/sshd_config.d/50-shutterbox.conf": "PasswordAuthentication no\n",
        "var/lib/dpkg/status": f"Package: dpkg\nStatus: install ok installed\nArchitecture: {arch}\n\n",
        "usr/bin/python3.11": "#!/bin/false\n",
        "opt/shutterbox/venv/bin/shutterbox": "#!/opt/shutterbox/venv/bin/python\n",
        "usr/local/sbin/shutterbox-firstboot": "#!/bin/sh\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name in ("opt/shutterbox/venv/bin/shutterbox", "usr/local/sbin/shutterbox-firstboot"):
        (root / name).chmod(0o755)
    (root / "usr/bin/python3").symlink_to("python3.11")
    (root / "opt/shutterbox/venv/bin/python").symlink_to("/usr/bin/python3")
    (root / "boot/firmware").mkdir(parents=True)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    for unit in ("shutterbox", "shutterbox-console", "shutterbox-firstboot"):
        (root / f"etc/systemd/system/{unit}.service").write_text("[Service]\n")
        (wants / f"{unit}.service").symlink_to(f"/etc/systemd/system/{unit}.service")
    return root


def add_pi_boot_files(root: Path) -> None:
    """Stand-ins for what raspi-firmware and linux-image-arm64 put in /boot/firmware."""
    firmware = root / "boot/firmware"
    names = ["bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat"]
    names += ["bcm2711-rpi-4-b.dtb", "bcm2837-rpi-3-b.dtb", f"vmlinuz-{KERNEL}", f"initrd.img-{KERNEL}"]
    for name in names:
        (firmware / name).write_bytes(b"\x7fstand-in " + name.encode())
    (firmware / "config.txt").write_text(
        f"arm_64bit=1\nenable_uart=1\nupstream_kernel=1\n\nkernel=vmlinuz-{KERNEL}\n"
        f"initramfs initrd.img-{KERNEL}\n"
    )
    (firmware / "cmdline.txt").write_text(
        f"console=ttyS1,115200 console=tty1 root=LABEL={layout()['ROOT_LABEL']} rw rootwait\n"
    )
    (root / f"usr/lib/modules/{KERNEL}").mkdir(parents=True)


def run(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Small partitions for speed (the defaults, 256 MiB and more, are what make image-check builds).
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "BOOT_MIB": "64", "ROOT_HEADROOM_MIB": "16"}
    return subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, check=check)


def build(root: Path, image: Path) -> Path:
    run(IMAGE_BUILD / "build-image.sh", root, image)
    return image


def partition(image: Path, number: int, out: Path) -> Path:
    table = json.loads(run("sfdisk", "--json", image).stdout)["partitiontable"]
    part = table["partitions"][number - 1]
    with image.open("rb") as src, out.open("wb") as dst:
        src.seek(part["start"] * 512)
        dst.write(src.read(part["size"] * 512))
    return out


def test_image_layout_and_checks(tmp_path: Path) -> None:
    image = build(fake_root(tmp_path), tmp_path / "box.img")
    table = json.loads(run("sfdisk", "--json", image).stdout)["partitiontable"]
    assert table["label"] == "dos"
    boot, root = table["partitions"]
    assert (boot["type"], root["type"]) == ("c", "83")
    assert boot["start"] == 8 * 2048
    assert all(n % (8 * 2048) == 0 for n in (boot["start"], boot["size"], root["start"], root["size"]))
    assert root["start"] >= boot["start"] + boot["size"]
    assert (root["start"] + root["size"]) * 512 == image.stat().st_size

    result = run(IMAGE_BUILD / "check-image.sh", image)
    assert "check-image: SKIPPED: Raspberry Pi boot files" in result.stdout
    assert result.stdout.rstrip().endswith("OK")


def test_same_epoch_same_identifiers(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    first = build(root, tmp_path / "a.img")
    second = build(root, tmp_path / "b.img")

    def identifiers(image: Path) -> tuple[str, ...]:
        fat = partition(image, 1, image.with_suffix(".p1"))
        ext4 = partition(image, 2, image.with_suffix(".p2"))
        uuids = [run("blkid", "-p", "-o", "value", "-s", "UUID", p).stdout for p in (fat, ext4)]
        seed = [line for line in run("dumpe2fs", "-h", ext4).stdout.splitlines() if "Hash Seed" in line]
        return (json.loads(run("sfdisk", "--json", image).stdout)["partitiontable"]["id"], *uuids, *seed)

    assert identifiers(first) == identifiers(second)
    # The FAT is byte for byte the same; the ext4 holds the root's access times (see build-image.sh).
    assert first.with_suffix(".p1").read_bytes() == second.with_suffix(".p1").read_bytes()


@needs_root
def test_pi_boot_files_go_to_the_fat_partition_only(tmp_path: Path) -> None:
    root = fake_root(tmp_path, arch="arm64")
    add_pi_boot_files(root)
    image = build(root, tmp_path / "pi.img")

    result = run(IMAGE_BUILD / "check-image.sh", image)
    assert "SKIPPED" not in result.stdout
    assert f"boot partition: firmware, vmlinuz-{KERNEL}" in result.stdout
    assert "arm64: Pi 3 and Pi 4 device trees" in result.stdout
    ext4 = partition(image, 2, tmp_path / "pi.p2")
    listing = run("debugfs", "-R", "ls -p /boot/firmware", ext4).stdout.split()
    assert [entry.split("/")[5] for entry in listing] == [".", ".."]  # the mount point, empty
    boot = partition(image, 1, tmp_path / "pi.p1")
    assert f"vmlinuz-{KERNEL}" in run("mdir", "-b", "-i", boot, "::").stdout
    assert (root / "boot/firmware/config.txt").exists()  # hidden from mkfs only, never moved


@pytest.mark.parametrize(
    ("break_root", "message"),
    [
        (lambda root: (root / "etc/machine-id").write_text("0123456789abcdef\n"), "machine id is baked"),
        (lambda root: (root / "etc/ssh/ssh_host_ed25519_key").write_text("key"), "SSH host keys"),
        (
            lambda root: (root / "etc/systemd/system/multi-user.target.wants/shutterbox.service").unlink(),
            "shutterbox.service is not enabled",
        ),
        (lambda root: (root / "opt/shutterbox/venv/bin/shutterbox").chmod(0o644), "not an executable"),
    ],
)
def test_check_image_catches(tmp_path: Path, break_root: Callable[[Path], object], message: str) -> None:
    root = fake_root(tmp_path)
    break_root(root)
    result = run(IMAGE_BUILD / "check-image.sh", build(root, tmp_path / "box.img"), check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_pi_checks_catch_a_wrong_root_label(tmp_path: Path) -> None:
    root = fake_root(tmp_path, arch="arm64")
    add_pi_boot_files(root)
    (root / "boot/firmware/cmdline.txt").write_text("console=tty1 root=/dev/mmcblk0p2 rw\n")
    if os.geteuid() != 0:
        pytest.skip("hiding /boot/firmware from mkfs needs root")
    result = run(IMAGE_BUILD / "check-image.sh", build(root, tmp_path / "pi.img"), check=False)
    assert "cmdline.txt does not boot root=LABEL=" in result.stderr


def test_build_image_refuses_a_root_without_the_fstab(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    (root / "etc/fstab").write_text("# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
    result = run(IMAGE_BUILD / "build-image.sh", root, tmp_path / "box.img", check=False)
    assert result.returncode == 1
    assert "does not mount LABEL=" in result.stderr
    assert not (tmp_path / "box.img").exists()


@pytest.mark.parametrize("source", ["overlay", "", "/dev/shutterbox-test-no-such-disk"])
def test_first_boot_grow_leaves_a_root_that_is_no_partition_alone(tmp_path: Path, source: str) -> None:
    """grow_root from firstboot.sh with findmnt answering as in a container, a chroot without
    /proc, or for a device that is no partition: nothing grown, first boot goes on."""
    script = (IMAGE_BUILD / "firstboot.sh").read_text()
    grow_root = re.search(r"^grow_root\(\) \{\n.*?^\}\n", script, re.MULTILINE | re.DOTALL)
    assert grow_root is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    findmnt = bin_dir / "findmnt"
    findmnt.write_text(f"#!/bin/sh\nprintf '%s\\n' '{source}'\n[ -n '{source}' ]\n")
    findmnt.chmod(0o755)
    for tool in ("sfdisk", "partx", "resize2fs"):  # must not run; fail loudly if they do
        (bin_dir / tool).write_text(f"#!/bin/sh\necho {tool} ran >&2\nexit 99\n")
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["sh", "-eu", "-c", grow_root.group(0) + "grow_root"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "not growing it" in result.stdout
    assert "ran" not in result.stderr

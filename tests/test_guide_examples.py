"""The operator guide's examples are what the box really prints: the first-start banner on a
terminal, the addresses it serves at every start, and `shutterbox status`. The guide's blocks
and the real output are compared after the parts that differ from box to box (codes, passwords,
addresses, ports, paths, sizes, times) are masked; a label, a line or an order that drifts
fails here."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import jpeg_bytes
from tests.test_cli import _read_until, start_on_terminal

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "operator-guide.md"

MASKS = [
    (re.compile(r"\b\d{4}-\d\d-\d\dT[\d:.]+\+00:00"), "TIME"),
    (re.compile(r"https?://[\w.-]+(:\d+)?"), "URL"),
    (re.compile(r"\b\d+\.\d+\.\d+\.\d+\b"), "ADDR"),
    (re.compile(r"\b\d+-\d+\b"), "RANGE"),
    (re.compile(r"(?<=:)\d+\b"), "PORT"),
    (re.compile(r"\bport \d+"), "port PORT"),
    (re.compile(r"\b[a-z2-9]{8}-demo-camera\b"), "USER"),
    (re.compile(r"\bpassword [a-z2-9]{14}\b"), "password SECRET"),
    (re.compile(r"\bevent [a-z2-9]{8}\b"), "event CODE"),
    (re.compile(r"--data \S+"), "--data DIR"),
    (re.compile(r"/\S+/run/control\.sock"), "SOCKET"),
    (re.compile(r"\bshutterbox \d+\.\d+\.\d+\b"), "shutterbox VERSION"),
    (re.compile(r"\b\d+(\.\d+)? ?(B|kB|KB|MB|GB|s|min|h)\b"), "AMOUNT"),
    (re.compile(r"\s+"), " "),
]


def masked(line: str) -> str:
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line.strip()


def guide_block(marker: str) -> list[str]:
    """The lines of the guide's fenced block that contains ``marker``."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.S | re.M)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"the guide has {len(found)} blocks with {marker!r}"
    return found[0].splitlines()


def test_first_start_banner_and_addresses_are_as_the_guide_shows(fresh_box: BoxProcess) -> None:
    master = start_on_terminal(fresh_box)
    try:
        shown = _read_until(
            master,
            re.compile(rb"(={64}.*?={64}).*?(shutterbox \S+ is serving:.*?control socket[^\n]*)", re.S),
        )
        banner, serving = (part.decode().replace("\r", "") for part in shown.groups())
    finally:
        os.close(master)
    fresh_box.info = {}
    assert fresh_box.stop() == 0

    guide = [masked(line) for line in guide_block("First start: created demo event")]
    real = [masked(line) for line in banner.splitlines()]
    assert real == guide, "the guide's first-start banner is not the box's:\n" + "\n".join(
        banner.splitlines()
    )

    # every start: each line the box prints is in the guide's block, in its order; the guide's
    # implicit-FTPS line is there only with ftp.implicit_tls_port set (this box has none)
    guide = [masked(line) for line in guide_block("is serving:")]
    real = [masked(line) for line in serving.splitlines()]
    assert real == [line for line in guide if not line.startswith("cameras, FTPS")], "\n".join(real)


def test_status_shows_the_labels_the_guide_shows_in_its_order(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data").start(timeout=60)
    try:
        user, password = box.new_key(box.new_event("Guide"))
        with box.ftp(user, password) as ftp:  # a photo in the queue, as in the guide's example
            assert store(ftp, "IMG_0001.JPG", jpeg_bytes(seed=1)).startswith("226")
        result = box.run_cli("status")
        assert result.returncode == 0, result.stderr
        text = result.stdout
    finally:
        assert box.stop() == 0
    example = guide_block("$ shutterbox status")
    lines = example[1 : example.index(next(line for line in example[1:] if line.startswith("$ ")))]
    labels = [
        re.split(r"\s{2,}", line.strip())[0] for line in lines if line.strip() and line.strip() != "..."
    ]
    real = [re.split(r"\s{2,}", line.strip())[0] for line in text.splitlines() if line.strip()]
    at = 0
    for label in labels:
        assert label in real[at:], (
            f"the guide shows {label!r} in `shutterbox status`, after {real[at - 1]!r}: not so"
        )
        at = real.index(label, at) + 1

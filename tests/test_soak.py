"""The whole-event soak, short: ``bench/soak.py``'s own code with its ``short`` preset (about two
minutes of shooting, a few hundred files from six camera bodies in two events, two SIGKILLs and
restarts, an uplink blackout, stall and slow-down, cuts by FIN, RST and TLS with resumes, S3 and
Rekognition errors, the disk at its reserve, guests searching throughout). Every correctness
check of the soak must pass; ``make soak`` runs the long version.

Known failure until the box is fixed: a SIGKILLed box leaves its face workers and multiprocessing's
resource tracker running (the check "processes a SIGKILLed box left running"; bench/README.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}"),
]


@pytest.fixture(scope="module")
def soak() -> Iterator[ModuleType]:
    """bench/soak.py, imported with bench/ on the path (the bench scripts import each other by name)."""
    sys.path.insert(0, str(BENCH))
    try:
        import soak as module

        yield module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.timeout(600)
def test_short_soak_loses_no_frame_and_answers_guests_right(tmp_path: Path, soak: ModuleType) -> None:
    report = soak.run(soak.PRESETS["short"], tmp_path)
    print(soak.render_report(report, soak.machine_info()))

    faults = report["faults"]
    assert faults["sigkill_restarts"] >= 1, "the box was killed and restarted"
    assert sum(faults["blackouts"].values()) >= 1, "the uplink blacked out"
    assert faults["cuts_done"]["rst"] >= 1, "a transfer was cut by an RST"
    assert sum(faults["resumes_ok"].values()) >= 1, "a cut transfer was resumed (REST or APPE)"
    assert report["phases"]["delivered"], "the cameras delivered their cards"
    assert report["phases"]["drained"], "the sync drained"
    failed = [f"{row['name']}: {row['value']}" for row in report["checks"] if row["verdict"] == "FAIL"]
    assert not failed, failed
    assert report["ok"]

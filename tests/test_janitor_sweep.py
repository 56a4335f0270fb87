"""The janitor's periodic sweep: old interrupted uploads and old quarantine go; completed frames
(read-only links to the store) and anything recent stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from appliance.config import StorageSettings
from appliance.ingest.janitor import Janitor
from appliance.layout import Layout


def test_sweep_removes_only_old_partials_and_old_quarantine(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    jail = layout.ftp / "key1" / "DCIM"
    jail.mkdir(parents=True)
    old = time.time() - 3 * 86400
    partial_old, partial_new, completed = jail / "A.JPG", jail / "B.JPG", jail / "C.JPG"
    for path in (partial_old, partial_new, completed):
        path.write_bytes(b"x" * 10)
    completed.chmod(0o444)  # a landed frame: read-only hard link to the store
    os.utime(partial_old, (old, old))
    os.utime(completed, (old, old))
    day = layout.quarantine / "20260101"
    day.mkdir()
    (day / "q-old.jpg").write_bytes(b"q")
    os.utime(day / "q-old.jpg", (old - 8 * 86400, old - 8 * 86400))
    recent_day = layout.quarantine / "20990101"
    recent_day.mkdir()
    (recent_day / "q-new.jpg").write_bytes(b"q")

    janitor = Janitor(layout, store=None, settings=StorageSettings(partial_hours=24, quarantine_days=7))  # type: ignore[arg-type]
    assert janitor.sweep() == 2
    assert not partial_old.exists()
    assert partial_new.exists() and completed.exists()
    assert not day.exists(), "an emptied quarantine day folder is removed"
    assert (recent_day / "q-new.jpg").exists()

"""What a person reads of each ``shutterbox`` listing: the columns of events, keys, cameras,
photos, rejections, dead letters and the ledger (their ``--json`` has every field), and which
parts of ``status`` come first. Pure data for ``appliance.plaintext``; no thread of its own.
"""

from __future__ import annotations

from typing import Any

from appliance.plaintext import Column


def camera_state(c: dict[str, Any]) -> str:
    return "revoked" if c["revoked"] else f"connected ({c['connected']})" if c["connected"] else "-"


STATUS_FIRST = ("running", "alerts", "queue", "queue_summary", "disk", "ftp", "cloud", "faces", "throughput")
EVENT_COLUMNS = [
    Column("code", lambda e: e["code"]),
    Column("name", lambda e: e["name"] + ("  (demo)" if e.get("demo") else ""), width=32),
    Column("functions", lambda e: ", ".join(e["functions"]), width=40),
]
KEY_COLUMNS = [
    Column("user", lambda k: k["username"], width=40),
    Column("event/function", lambda k: f"{k['event']}/{k['function']}", width=32),
    Column("camera", lambda k: k["camera"], width=24),
    Column("state", lambda k: "revoked" if k["revoked_at"] else "active"),
]
PHOTO_COLUMNS = [
    Column("id", lambda p: str(p["id"]), right=True),
    Column("state", lambda p: p["state"]),
    Column("camera", lambda p: p["camera"], width=20),
    Column("name", lambda p: p["original_name"], width=40),
    Column("size", lambda p: f"{p['size']} B", right=True),
    Column("sha256", lambda p: p["sha256"][:12]),
]
REJECTION_COLUMNS = [
    Column("at", lambda r: r["at"]),
    Column("name", lambda r: r["original_name"], width=32),
    Column("size", lambda r: f"{r['size']} B", right=True),
    Column(
        "reason",
        lambda r: (
            r["reason"] + (f" (resumed: photo {r['resumed_photo_id']})" if r["resumed_photo_id"] else "")
        ),
    ),
]
CAMERA_COLUMNS = [
    Column("user", lambda c: c["username"], width=32),
    Column("camera", lambda c: c["camera"], width=20),
    Column("state", camera_state),
    Column("today", lambda c: str(c["frames_today"]), right=True),
    Column("total", lambda c: str(c["frames_total"]), right=True),
    Column("last frame", lambda c: c["last_frame_at"] or "-"),
    Column("errors", lambda c: str(c["errors"]) + (f" ({c['last_error']})" if c["last_error"] else "")),
]
DEAD_LETTER_COLUMNS = [
    Column("job", lambda d: str(d["job_id"]), right=True),
    Column("kind", lambda d: d["kind"]),
    Column("name", lambda d: d["original_name"], width=32),
    Column("reason", lambda d: d["reason"]),
]
LEDGER_COLUMNS = [
    Column("at", lambda r: r["at"]),
    Column("operation", lambda r: r["operation"]),
    Column("key", lambda r: r["idempotency_key"], width=48),
    Column("outcome", lambda r: r["outcome"]),
]

CHECKLIST_COLUMNS = [
    Column("when", lambda r: r["part"]),
    Column(
        "state", lambda r: {"done": "[x] done", "not yet": "[ ] not yet"}.get(r["state"], f"[-] {r['state']}")
    ),
    Column("what", lambda r: r["text"], width=44),
    Column("the box sees", lambda r: r["detail"]),
]

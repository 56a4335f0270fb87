"""Pieces of ``bench/soak.py``: the end-of-run checks, each a row with PASS, FAIL or a figure.

Ground truth is what the cameras recorded: every file they made (name, SHA-256, event) and which
of them got a 226, plus who is in each picture (``_soak_corpus``). Against it: the box's queue
and files (admin API over the control socket, and the files themselves), moto's bucket (every
object version), the box's usage ledger, the fake Rekognition's own call log and collections,
the box's rejections and quarantine, and every guest answer. Runs on the caller's thread after
the cameras and guests have stopped and the sync has drained; the box is still running.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _soak_cameras import CameraLog, Cut, Upload
from _soak_corpus import ABSENT, identities
from _soak_guests import Answer
from PIL import Image

from appliance.ingest.formats import InvalidFile, inspect

SAMPLE = 60  # S3 objects whose content is read back; JPEGs decoded in full


@dataclass(frozen=True)
class Row:
    section: str
    name: str
    value: str
    verdict: str  # PASS, FAIL or "" (a figure)


@dataclass
class Observed:
    """What the run saw and what the box, the bucket and the fake hold at the end."""

    events: dict[str, str]  # "A"/"B" -> event code
    cameras: dict[str, CameraLog]
    photos: list[dict[str, Any]]  # the soak events' queue
    ledger: list[dict[str, Any]]
    rejections: list[dict[str, Any]]
    deadletters: list[dict[str, Any]]
    objects: list[dict[str, Any]]  # the S3 objects under the events' prefixes (their latest versions)
    extra_versions: int | None  # object versions beyond the first: repeated uploads (None: not counted)
    index_calls: list[tuple[str, str]]  # (collection, ExternalImageId) of every IndexFaces at the fake
    collections: dict[str, list[dict[str, Any]]]
    fake_invalid: int
    fake_crashes: int
    answers: list[Answer]
    final_answers: list[Answer]
    s3_get: Callable[[str], bytes]
    log_text: str = ""
    kills: int = 0
    restarts: int = 0
    graceful: int = 0
    crashes: list[str] = field(default_factory=list)
    peak_rss_mb: float | None = None  # the live box's process tree
    peak_with_leftovers_mb: float | None = None  # that plus what killed boxes left running
    leftovers: list[str] = field(default_factory=list)  # still running at the end
    leftover_mb: float = 0.0
    rss_bound_mb: float = 1536.0
    rss_runs: list[tuple[float, float]] = field(default_factory=list)  # per box process: (minutes, peak MB)
    delivered: bool = True  # every camera's card emptied after the shooting
    drained: bool = True  # no sync job left (none pending, leased or parked)


class Checker:
    def __init__(self, o: Observed) -> None:
        self.o = o
        self.rows: list[Row] = []
        self.uploads: list[Upload] = [u for log in o.cameras.values() for u in log.uploads]
        self.cuts: list[Cut] = [c for log in o.cameras.values() for c in log.cuts]
        self.made = {u.frame.sha256: u for u in self.uploads}  # every file a camera made
        self.acked: dict[tuple[str, str], Upload] = {}
        for u in self.uploads:
            if u.acked_at is not None:
                self.acked.setdefault((u.event, u.frame.sha256), u)
        self.photo_at = {(p["event"], p["sha256"]): p for p in o.photos}
        self.photo_id = {int(p["id"]): p for p in o.photos}
        self.lost: dict[str, set[tuple[str, str]]] = defaultdict(set)

    def add(self, section: str, name: str, value: object, ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append(Row(section, name, str(value), verdict))

    def run(self) -> list[Row]:
        self.add(
            "run",
            "cameras delivered every file after the shooting (none stuck)",
            self.o.delivered,
            self.o.delivered,
        )
        self.add("run", "sync drained (it never stopped making progress)", self.o.drained, self.o.drained)
        self.queue()
        self.truncation()
        self.s3()
        self.index_faces()
        self.guests()
        self.box()
        lost = set().union(*self.lost.values()) if self.lost else set()
        why = ", ".join(f"{k} {len(v)}" for k, v in sorted(self.lost.items()) if v)
        self.add(
            "result",
            "frames lost (226 received, then missing anywhere)",
            f"{len(lost)} {why}".strip(),
            not lost,
        )
        return self.rows

    # --- the queue

    def queue(self) -> None:
        jpegs = sum(u.kind == "jpeg" for u in self.acked.values())
        self.add(
            "queue",
            "frames acknowledged (226)",
            f"{len(self.acked)} ({jpegs} JPEG, {len(self.acked) - jpegs} RAW)",
        )
        self.add(
            "queue",
            "frames made by the cameras / never acknowledged",
            f"{len(self.made)} / {len(self.made) - len(self.acked)}",
        )
        missing, bad_file, wrong_id = set(), [], []
        for key, upload in self.acked.items():
            photo = self.photo_at.get(key)
            if photo is None or photo["state"] == "missing":
                missing.add(key)
                continue
            if upload.photo_id is not None and upload.photo_id != photo["id"]:
                wrong_id.append(f"{upload.name}: 226 named photo {upload.photo_id}, queue has {photo['id']}")
            if _sha_of(Path(photo["stored_path"])) != photo["sha256"] and not photo.get("evicted_at"):
                bad_file.append(str(photo["id"]))
                missing.add(key)
        self.lost["not in the queue"] = missing
        found = len(self.acked) - len(missing)
        self.add(
            "queue",
            "acknowledged frames in the queue, file intact",
            f"{found}/{len(self.acked)}",
            not missing,
        )
        self.add(
            "queue",
            "226 replies naming the photo the queue holds",
            f"{len(wrong_id)} wrong {wrong_id[:2]}",
            not wrong_id,
        )
        self.add("queue", "frames in the queue (both events)", len(self.o.photos))
        unacked = sum((p["event"], p["sha256"]) not in self.acked for p in self.o.photos)
        self.add("queue", "queued but the camera never got its 226 (box killed in between)", unacked)
        crossed = [
            p["id"]
            for p in self.o.photos
            if p["sha256"] in self.made and self.made[p["sha256"]].event != p["event"]
        ]
        self.add("queue", "frames queued in another event than their key's", len(crossed), not crossed)

    def truncation(self) -> None:
        stranger = [p for p in self.o.photos if p["sha256"] not in self.made]
        self.add("truncation", "queued frames that are no complete camera file", len(stranger), not stranger)
        broken = []
        for photo in self.o.photos:
            path = Path(photo["stored_path"])
            try:
                inspect(path, photo["original_name"])
            except (InvalidFile, OSError) as exc:
                broken.append(f"{photo['id']}: {exc}")
        decoded = _decode_sample([Path(p["stored_path"]) for p in self.o.photos if p["kind"] == "jpeg"])
        self.add(
            "truncation",
            "queued files passing the structure check / JPEGs decoded in full",
            f"{len(self.o.photos) - len(broken)}/{len(self.o.photos)} / {decoded[0]}/{decoded[1]} sampled",
            not broken and decoded[0] == decoded[1],
        )
        by_how = Counter(c.how for c in self.cuts)
        acked = [c for c in self.cuts if c.acked]
        replies = Counter(c.reply[:3] if c.reply[:1].isdigit() else "no reply" for c in self.cuts)
        self.add(
            "truncation",
            "transfers cut (FIN / RST / TLS without close-notify / session dropped)",
            _counts(by_how, ("fin", "rst", "tls", "drop")),
        )
        self.add(
            "truncation",
            "cut transfers answered 226",
            f"{len(acked)} {[c.name for c in acked[:3]]}",
            not acked,
        )
        self.add("truncation", "box's replies to cut transfers", dict(replies))
        rejected = Counter((r["username"], r["original_name"]) for r in self.o.rejections)
        answered = Counter((c.username, c.name) for c in self.cuts if c.reply[:3] in ("426", "451"))
        unrecorded = sum(max(0, n - rejected[k]) for k, n in answered.items())
        self.add(
            "truncation",
            "refused cuts recorded as rejections",
            f"{answered.total() - unrecorded}/{answered.total()}",
            unrecorded == 0,
        )
        kept = [r for r in self.o.rejections if r["quarantine_path"]]
        gone = [r["id"] for r in kept if not Path(r["quarantine_path"]).exists()]
        whole = sum(_sha_of(Path(r["quarantine_path"])) in self.made for r in kept if r["id"] not in gone)
        self.add(
            "truncation",
            "rejections with bytes: quarantined file present",
            f"{len(kept) - len(gone)}/{len(kept)}",
            not gone,
        )
        self.add("truncation", "quarantined files that are whole camera files (in flight at a kill)", whole)
        resumes = [r for log in self.o.cameras.values() for r in log.resumes]
        verbs = Counter(f"{r.verb} after a {r.after}{'' if r.ok else ' (failed)'}" for r in resumes)
        self.add("truncation", "resumes (REST+STOR / APPE)", dict(verbs) or "none")

    # --- the bucket

    def s3(self) -> None:
        latest = {obj["Key"]: obj for obj in self.o.objects}
        extra_versions = "-" if self.o.extra_versions is None else self.o.extra_versions
        originals: dict[tuple[str, str], dict[str, Any]] = {}
        proxies: dict[tuple[str, str], dict[str, Any]] = {}
        for key, v in latest.items():
            parts = key.split("/")
            event, name = parts[1], parts[-1]
            (proxies if parts[-2] == "proxy" else originals)[(event, name.split(".")[0])] = v
        self.add(
            "s3",
            "objects: proxies / originals (versions beyond the first)",
            f"{len(proxies)} / {len(originals)} ({extra_versions})",
        )
        no_original, wrong_size, no_proxy = set(), [], set()
        for key, upload in self.acked.items():
            obj = originals.get(key)
            if obj is None:
                no_original.add(key)
            elif obj["Size"] != upload.frame.size:
                wrong_size.append(upload.name)
                no_original.add(key)
            if upload.kind == "jpeg" and key not in proxies:
                no_proxy.add(key)
        self.lost["original not in S3"] = no_original
        self.lost["proxy not in S3"] = no_proxy
        jpegs = sum(u.kind == "jpeg" for u in self.acked.values())
        self.add(
            "s3",
            "acknowledged frames in S3: originals (right size)",
            f"{len(self.acked) - len(no_original)}/{len(self.acked)}",
            not no_original,
        )
        self.add("s3", "acknowledged JPEGs in S3: proxies", f"{jpegs - len(no_proxy)}/{jpegs}", not no_proxy)
        strangers = [k for k in originals if k[1] not in self.made] + [
            k for k in proxies if k[1] not in self.made
        ]
        crossed = [k for k in originals if k[1] in self.made and self.made[k[1]].event != k[0]]
        self.add(
            "s3",
            "objects of no complete camera file / under another event",
            f"{len(strangers)} / {len(crossed)}",
            not strangers and not crossed,
        )
        sample = random.Random(7).sample(sorted(originals), min(SAMPLE, len(originals)))
        differ = [k for k in sample if hashlib.sha256(self.o.s3_get(originals[k]["Key"])).hexdigest() != k[1]]
        proxy_sample = random.Random(8).sample(sorted(proxies), min(SAMPLE // 2, len(proxies)))
        proxy_differ = 0
        for k in proxy_sample:
            # the proxy in S3 is the cloud proxy, sized to the link when it was sent: the local
            # proxy itself, or a smaller one made from it (deleted once indexed); either way the
            # box recorded its SHA-256 before the upload
            photo = self.photo_at.get(k)
            recorded = photo.get("cloud_proxy_sha256") if photo else None
            if recorded is None or hashlib.sha256(self.o.s3_get(proxies[k]["Key"])).hexdigest() != recorded:
                proxy_differ += 1
        self.add(
            "s3",
            "objects read back: original = its SHA-256, proxy = the cloud proxy the box recorded",
            f"{len(sample) - len(differ)}/{len(sample)},"
            f" {len(proxy_sample) - proxy_differ}/{len(proxy_sample)}",
            not differ and not proxy_differ,
        )

    # --- Rekognition

    def index_faces(self) -> None:
        rows = [r for r in self.o.ledger if r["operation"] == "IndexFaces"]
        per_photo: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            per_photo[int(r["photo_id"])].append(r)
        outcomes = Counter(
            "ok" if r["outcome"] == "ok" else r["outcome"].split(":")[0].split(" ")[0] for r in rows
        )
        self.add("rekognition", "IndexFaces in the ledger (by outcome)", f"{len(rows)} {dict(outcomes)}")
        calls = Counter(int(ext) for _, ext in self.o.index_calls if ext.isdigit())
        self.add(
            "rekognition",
            "IndexFaces at the fake (its own log): calls / photos",
            f"{sum(calls.values())} / {len(calls)}",
        )
        jpeg_photos = {
            int(self.photo_at[k]["id"]): k
            for k, u in self.acked.items()
            if u.kind == "jpeg" and k in self.photo_at
        }
        not_once = [
            pid for pid in jpeg_photos if sum(r["outcome"] == "ok" for r in per_photo.get(pid, [])) != 1
        ]
        never_called = [pid for pid in jpeg_photos if calls[pid] == 0]
        self.lost["not indexed once"] = {jpeg_photos[p] for p in not_once}
        self.add(
            "rekognition",
            "acknowledged JPEGs with exactly one settled IndexFaces",
            f"{len(jpeg_photos) - len(not_once)}/{len(jpeg_photos)}",
            not not_once,
        )
        self.add(
            "rekognition",
            "acknowledged JPEGs the fake never saw indexed",
            len(never_called),
            not never_called,
        )
        unbilled = [pid for pid, n in calls.items() if n > len(per_photo.get(pid, []))]
        self.add(
            "rekognition",
            "photos with more calls at the fake than rows in the ledger",
            f"{len(unbilled)} {unbilled[:3]}",
            not unbilled,
        )
        repeats = sum(n - 1 for n in calls.values() if n > 1)
        self.add(
            "rekognition",
            "repeated IndexFaces calls (after an error or a kill; same bytes, same id)",
            repeats,
        )
        keys_changed = [pid for pid, rs in per_photo.items() if len({r["idempotency_key"] for r in rs}) > 1]
        self.add(
            "rekognition", "photos indexed with different proxy bytes", len(keys_changed), not keys_changed
        )
        stored: Counter[tuple[str, int]] = Counter()
        for collection, faces in self.o.collections.items():
            for face in faces:
                ext = str(face.get("ExternalImageId", ""))
                if ext.isdigit():
                    stored[(collection, int(ext))] += 1
        duplicates = missing = crossed = 0
        for (collection, pid), n in stored.items():
            photo = self.photo_id.get(pid)
            if photo is None or photo["event"] != collection:
                crossed += n
                continue
        for pid, key in jpeg_photos.items():
            declared = len(self.made[key[1]].frame.base.faces)
            n = stored[(key[0], pid)]
            duplicates += max(0, n - declared)
            missing += max(0, declared - n)
        total = sum(stored.values())
        self.add(
            "rekognition",
            "stored faces: total / duplicates / missing / in another event's collection",
            f"{total} / {duplicates} / {missing} / {crossed}",
            duplicates == missing == crossed == 0,
        )
        self.add(
            "rekognition",
            "fake: requests outside the service model / crashes",
            f"{self.o.fake_invalid} / {self.o.fake_crashes}",
            self.o.fake_invalid == self.o.fake_crashes == 0,
        )
        dead = [f"{d['kind']} of {d['original_name']}: {d['reason']}" for d in self.o.deadletters]
        self.add("rekognition", "dead letters", f"{len(dead)} {dead[:2]}", not dead)

    # --- guests

    def guests(self) -> None:
        answers = self.o.answers
        statuses = Counter(a.status for a in answers)
        modes = Counter(a.mode for a in answers if a.status == 200)
        wrong, crossed, absent, unknown, returned = self._judge(answers)
        self.add(
            "guests",
            "searches during the run: total / answered / no answer (box down)",
            f"{len(answers)} / {statuses[200]} / {statuses[0]}",
        )
        silent = Counter((a.error or "").split(":")[0] for a in answers if a.status == 0)
        self.add("guests", "no answer, by what the guest saw", dict(silent) or "-")
        self.add("guests", "answers by status, by mode", f"{dict(statuses)}, {dict(modes)}")
        self.add("guests", "photos returned in all", returned)
        self.add("guests", "photos of another person returned", wrong, wrong == 0)
        self.add(
            "guests",
            "photos of another event returned (or unknown)",
            f"{crossed} ({unknown})",
            crossed == unknown == 0,
        )
        self.add("guests", f"photos returned for {ABSENT} (in no photo)", absent, absent == 0)
        others = [e for a in answers if a.status not in (200, 0) for e in [f"{a.status} {a.error}"]]
        self.add(
            "guests",
            "errors other than the box being down",
            f"{len(others)} {Counter(others).most_common(3)}",
        )
        final = self.o.final_answers
        wrong_f, crossed_f, absent_f, unknown_f, _ = self._judge(final)
        incomplete, local = [], 0
        for a in final:
            if a.status != 200 or a.mode != "cloud":
                local += 1
                continue
            expected = {
                int(p["id"])
                for p in self.o.photos
                if p["event"] == a.event
                and p["kind"] == "jpeg"
                and p["sha256"] in self.made
                and a.person in identities(self.made[p["sha256"]].frame.base)
            }
            if set(a.photo_ids) != expected:
                incomplete.append(f"{a.person}@{a.event}: {len(set(a.photo_ids) & expected)}/{len(expected)}")
        self.add(
            "guests",
            "after the run, every person in every event: exact result (cloud answers)",
            f"{len(final) - local - len(incomplete)}/{len(final) - local} exact,"
            f" {local} answered locally {incomplete[:3]}",
            not incomplete and wrong_f == crossed_f == absent_f == unknown_f == 0,
        )

    def _judge(self, answers: Sequence[Answer]) -> tuple[int, int, int, int, int]:
        wrong = crossed = absent = unknown = returned = 0
        for a in answers:
            for pid in a.photo_ids:
                returned += 1
                photo = self.photo_id.get(pid)
                if photo is None or photo["sha256"] not in self.made:
                    unknown += 1
                    continue
                upload = self.made[photo["sha256"]]
                if photo["event"] != a.event or upload.event != a.event:
                    crossed += 1
                if a.person not in identities(upload.frame.base):
                    wrong += 1
                    absent += a.person == ABSENT
        return wrong, crossed, absent, unknown, returned

    # --- the box

    def box(self) -> None:
        o = self.o
        self.add("box", "restarts: after SIGKILL / graceful (settings changed)", f"{o.kills} / {o.graceful}")
        self.add(
            "box",
            "crashes (exited on its own, failed to start or to stop cleanly)",
            f"{len(o.crashes)} {o.crashes[:1]}",
            not o.crashes,
        )
        tree, both = o.peak_rss_mb, o.peak_with_leftovers_mb
        self.add(
            "box",
            f"peak RSS: the box's process tree / with what killed boxes left (bound {o.rss_bound_mb:.0f} MB)",
            f"{_mb(tree)} / {_mb(both)}",
            both is not None and both <= o.rss_bound_mb,
        )
        self.add(
            "box",
            "processes a SIGKILLed box left running (face workers, resource tracker)",
            f"{len(o.leftovers)}, {o.leftover_mb:.0f} MB {o.leftovers[:3]}",
            not o.leftovers,
        )
        runs = ", ".join(f"{peak:.0f} MB/{minutes:.1f} min" for minutes, peak in o.rss_runs)
        self.add("box", "peak RSS of each box process (a leak grows from one to the next)", runs or "-")
        dialogue = [e for log in o.cameras.values() for e in log.dialogue_errors]
        refused = [e for log in o.cameras.values() for e in log.unexpected]
        self.add(
            "box",
            "camera dialogue commands refused (Canon probe, MKD, CWD)",
            f"{len(dialogue)} {dialogue[:2]}",
            not dialogue,
        )
        self.add(
            "box",
            "whole files answered 426, 451 or 5xx (not cut by the camera)",
            f"{len(refused)} {refused[:2]}",
            not refused,
        )
        tracebacks = o.log_text.count("Traceback (most recent call last)")
        errors = [line for line in o.log_text.splitlines() if " ERROR " in line or " CRITICAL " in line]
        self.add(
            "box",
            "log: tracebacks / ERROR lines",
            f"{tracebacks} / {len(errors)} {[e[:160] for e in errors[:2]]}",
        )
        kinds = Counter(_warning_kind(line) for line in o.log_text.splitlines() if " WARNING " in line)
        self.add("box", "log: WARNING lines, commonest kinds", f"{kinds.total()} {kinds.most_common(6)}")


def _warning_kind(line: str) -> str:
    """``logger: the message's first words``, numbers and names left out."""
    _, _, rest = line.partition(" WARNING ")
    logger, _, message = rest.partition(": ")
    words = [w for w in (w.strip("():,;.'\"") for w in message.split()[:8]) if w.isalpha()]
    return f"{logger.rsplit('.', 1)[-1]}: {' '.join(words[:4])}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def _sha_of(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _decode_sample(paths: Sequence[Path]) -> tuple[int, int]:
    """(decoded fine, tried) over a sample of JPEGs, each decoded in full."""
    sample = random.Random(9).sample(list(paths), min(SAMPLE, len(paths)))
    ok = 0
    for path in sample:
        try:
            with Image.open(io.BytesIO(path.read_bytes())) as image:
                image.load()
            ok += 1
        except (OSError, SyntaxError, ValueError):
            pass
    return ok, len(sample)


def _counts(counter: Counter[str], order: Sequence[str]) -> str:
    return " / ".join(str(counter.get(k, 0)) for k in order)


def render(rows: Sequence[Row]) -> str:
    width = max(len(r.name) for r in rows) + 2
    lines, section = [], ""
    for r in rows:
        if r.section != section:
            section = r.section
            lines.append(f"-- {section} " + "-" * max(0, width + 30 - len(section)))
        lines.append(f"{r.verdict or '':<5} {r.name:<{width}}{r.value}")
    return "\n".join(lines)

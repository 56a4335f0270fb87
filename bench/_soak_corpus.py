"""Pieces of ``bench/soak.py``: what the emulated cameras shoot and what the guests upload.

JPEGs are synthetic event photos with real public-domain faces pasted on them
(``bench/_synthetic.py``), so the box's local dlib index finds and matches them for real, and
with a face declaration (a COM segment, ``tests/fakes/rekognition.py``) naming the same people at
the same places in the box's 2048 px proxy, so the fake Rekognition indexes and searches them
without a model. The declaration is the last COM segment (the proxy keeps only that one); each
frame gets its own COM segment before it, so every frame has new bytes. RAW files are small
structurally valid NEF/ARW (TIFF) and CR3 (ISO-BMFF) files whose raw data ends in a frame-unique
tag: any cut of them is a structural error the box must see.

Selfies are the public-domain files themselves (PNG turned into JPEG), each with a declaration
of its person, which the box's selfie normalisation keeps for the cloud search. Hopper is pasted
into no photo: her searches must find nothing.

A base picture is encoded once; frames are assembled when sent (``_sync_helpers.Frame``).
Runs on the caller's thread; ``make_jpeg_bases`` before any thread is started (it forks).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import random
import struct
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import _synthetic
from _sync_helpers import Base, Frame, after_app_segments, segment
from PIL import Image

from appliance.ingest.formats import InvalidFile, inspect
from appliance.proxy import make_proxy
from tests.fakes.rekognition import FACES_TAG, with_faces
from tests.test_formats import TiffEntry, ascii_value, box, build_tiff, ftyp

FRAME_SIZE = (2400, 1600)  # a small camera JPEG: ~1 MB at quality 85; the proxy is 2048x1365
JPEG_QUALITY = 85
FACE_WIDTHS = (170, 330)  # pasted face width range in frame pixels (145-280 px in the proxy)
PASTED = ("obama-1", "obama-3", "biden-1", "curie-couple", "collins-astronaut")
SELFIES = {  # person -> the file a guest uploads
    "obama": "obama-2.jpg",  # a photograph that is pasted nowhere
    "biden": "biden-1.jpg",
    "marie-curie": "curie-couple-exif-orientation-6.jpg",
    "collins": "collins-astronaut.png",
    "hopper": "hopper-1.jpg",  # in no photo at all
}
ABSENT = "hopper"
SELFIE_LONG_EDGE = 1280  # appliance.faces.engine.SELFIE_LONG_EDGE: the declared box is in that picture
RAW_TAG = 64  # frame-unique bytes at the end of a RAW's raw data
RAW_EXT = {"canon": ".CR3", "nikon": ".NEF", "sony": ".ARW"}
CR3_PREVIEW_UUID = "eaf42b5e1c984b88b9fbb7dc406e4d16"  # Canon's preview box
RAW_MAKE = {"nikon": ("NIKON CORPORATION", "NIKON Z 9"), "sony": ("SONY", "ILCE-1")}


def identities(base: Base) -> frozenset[str]:
    """Who is in a base picture (the ground truth of every frame made from it)."""
    return frozenset(str(face["person"]) for face in base.faces)


def _compose_base(seed: int, pasted: Sequence[tuple[str, int]]) -> Base:
    """A picture with ``pasted`` (photograph, face width) and its declaration in proxy pixels."""
    frame = _synthetic.compose(seed, pasted, size=FRAME_SIZE)
    factor = _synthetic.proxy_factor(FRAME_SIZE)
    faces = tuple({"person": f.identity, "box": list(f.scaled(factor))} for f in frame.faces)
    encoded = _synthetic.encode(frame, JPEG_QUALITY)
    split = after_app_segments(encoded)
    declared = segment(0xFE, (FACES_TAG + json.dumps(list(faces))).encode())
    return Base(encoded[:split] + declared + encoded[split:], split, faces, 0)


def _jpeg_base(seed: int) -> Base:
    rnd = random.Random(seed)
    people = rnd.sample(PASTED, rnd.choice((0, 1, 1, 2, 2, 2, 3)))
    return _compose_base(seed, [(p, rnd.randrange(*FACE_WIDTHS)) for p in people])


def make_jpeg_bases(count: int, work: Path, seed: int = 5100, processes: int = 2) -> list[Base]:
    """``count`` distinct pictures (0-3 of the pasted people each, every person at least once),
    made ``processes`` at a time (forked, so only while this process has no other thread). The
    first one is turned into a proxy by the box's own code to check that the declaration
    survives it."""
    if not _synthetic.available():
        raise RuntimeError(f"the face pictures are missing from {_synthetic.FACES_DIR}")
    seeds = list(range(seed, seed + count))
    if processes > 1 and threading.active_count() == 1:  # forking a process with threads is unsafe
        with ProcessPoolExecutor(processes, mp_context=mp.get_context("fork")) as pool:
            bases = list(pool.map(_jpeg_base, seeds))
    else:
        bases = [_jpeg_base(s) for s in seeds]
    missing = set(_synthetic.picture(p).identity for p in PASTED) - set().union(*map(identities, bases))
    if missing:  # too few bases to hold everyone: add portraits of the missing
        bases += [_portrait(p, seed + count + i) for i, p in enumerate(sorted(missing))]
    source, dest = work / "check.jpg", work / "check-proxy.jpg"
    source.write_bytes(bases[0].data)
    proxy = make_proxy(source, dest)
    with Image.open(dest) as image:
        comment = image.info.get("comment", b"")
    if not bytes(comment).startswith(FACES_TAG.encode()):
        raise RuntimeError("the face declaration did not survive the box's proxy")
    return [Base(b.data, b.split, b.faces, proxy.size) for b in bases]


def _portrait(identity: str, seed: int) -> Base:
    picture = next(p.picture for p in _synthetic.PICTURES if p.identity == identity)
    return _compose_base(seed, [(picture, random.Random(seed).randrange(*FACE_WIDTHS))])


def raw_preview(seed: int) -> bytes:
    """The embedded preview a body writes into every RAW (a 1620 px JPEG here, of no one: the
    soak's RAWs are searched for faces like any photo since RAWs became searchable, and find none)."""
    shade = 60 + seed % 120
    picture = Image.linear_gradient("L").resize((1620, 1080)).point(lambda v: (v + shade) % 256)
    out = io.BytesIO()
    Image.merge("RGB", [picture, picture, picture]).save(out, "JPEG", quality=80)
    return out.getvalue()


def make_raw_base(brand: str, size: int, seed: int) -> Base:
    """A structurally valid RAW of about ``size`` bytes without its last ``RAW_TAG`` bytes, which
    each frame supplies (so the raw data, and the file, end with the frame's own tag). Each has
    its preview where the body writes it: CR3's PRVW box, the TIFF RAWs' JPEG SubIFD."""
    payload = random.Random(seed).randbytes(max(1024, size)) + bytes(RAW_TAG)
    preview = raw_preview(seed)
    if brand == "canon":
        with Image.open(io.BytesIO(preview)) as opened:
            width, height = opened.size
        prvw = box(b"PRVW", struct.pack(">I HHHH I", 0, 1, width, height, 1, len(preview)) + preview)
        data = (
            ftyp(b"crx ", b"crx ", b"isom")
            + box(b"moov", box(b"uuid", b"CMT1" * 40) + box(b"trak", b"t" * 200))
            + box(b"uuid", bytes.fromhex(CR3_PREVIEW_UUID) + bytes(8) + prvw)
            + box(b"mdat", payload)
        )
    else:
        make, model = RAW_MAKE[brand]
        ifd0: list[TiffEntry] = [
            (0x00FE, 4, (0,)),
            (0x0100, 4, (6048,)),
            (0x0101, 4, (4032,)),
            (0x0103, 3, (34713 if brand == "nikon" else 32767,)),  # the bodies' raw compressions
            (0x0106, 3, (32803,)),  # CFA: sensor data, not a picture
            (0x010F, 2, ascii_value(make)),
            (0x0110, 2, ascii_value(model)),
            (0x0111, 4, ("raw",)),
            (0x0117, 4, (len(payload),)),
            (0x0132, 2, ascii_value("2025:06:14 18:30:00")),
            (0x014A, 4, ("ifd1",)),
        ]
        jpeg_ifd: list[TiffEntry] = [
            (0x00FE, 4, (1,)),
            (0x0103, 3, (6,)),
            (0x0201, 4, ("preview",)),
            (0x0202, 4, (len(preview),)),
        ]
        data, _where = build_tiff(
            [ifd0, jpeg_ifd], [("preview", preview), ("raw", payload)], order="<" if brand == "sony" else ">"
        )
    body = data[:-RAW_TAG]
    return Base(body, len(body), (), 0)


def check_raw_bases(bases: dict[str, Base], work: Path) -> None:
    """Each RAW base with a tag passes the box's structure check; cut anywhere, it fails it."""
    for brand, base in bases.items():
        name = f"check{RAW_EXT[brand]}"
        whole = base.data + b"t" * RAW_TAG
        path = work / name
        path.write_bytes(whole)
        inspect(path, name)
        for cut in (len(whole) // 3, len(whole) - 1):
            path.write_bytes(whole[:cut])
            try:
                inspect(path, name)
            except InvalidFile:
                continue
            raise RuntimeError(f"a {brand} RAW cut at {cut} bytes passes the box's structure check")


def frame_of(index: int, camera: int, name: str, base: Base, label: str, raw: bool) -> Frame:
    """One upload: ``base`` made unique by ``label`` (a COM segment, or a RAW's last bytes)."""
    text = label.encode()
    comment = text[:RAW_TAG].ljust(RAW_TAG, b".") if raw else segment(0xFE, text)
    digest = hashlib.sha256()
    view = memoryview(base.data)
    for part in (view[: base.split], comment, view[base.split :]):
        digest.update(part)
    return Frame(index, camera, name, base, comment, digest.hexdigest(), len(base.data) + len(comment))


@dataclass(frozen=True)
class Selfie:
    person: str
    file: str
    data: bytes


def make_selfies(people: Sequence[str] = tuple(SELFIES)) -> list[Selfie]:
    """Each person's selfie file as a guest uploads it, declared for the fake Rekognition."""
    selfies = []
    for person in people:
        file = SELFIES[person]
        raw = (_synthetic.FACES_DIR / file).read_bytes()
        if not raw.startswith(b"\xff\xd8"):
            out = io.BytesIO()
            with Image.open(io.BytesIO(raw)) as image:
                image.convert("RGB").save(out, "JPEG", quality=92)
            raw = out.getvalue()
        (left, top, width, height), size = _synthetic.sitter(file)
        scale = min(1.0, SELFIE_LONG_EDGE / max(size))
        declared = [{"person": person, "box": [round(v * scale) for v in (left, top, width, height)]}]
        selfies.append(Selfie(person, file, with_faces(_without_comments(raw), declared)))
    return selfies


def _without_comments(jpeg: bytes) -> bytes:
    """The JPEG without its COM segments: Pillow keeps only the last one, which must be ours."""
    out, pos = bytearray(jpeg[:2]), 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and jpeg[pos + 1] not in (0xDA, 0xD9):
        end = pos + 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if jpeg[pos + 1] != 0xFE:
            out += jpeg[pos:end]
        pos = end
    return bytes(out + jpeg[pos:])

"""Hostile input for the two parsers that read bytes from strangers: the structure checks run on
every camera upload before its "226" (``appliance.ingest.formats.inspect``) and the selfie
decoder run on every guest search (``appliance.faces.engine.decode_selfie``).

The RAW preview finder (``appliance.ingest.previews.find_preview``) and the proxy made from it
get the same treatment: a preview inside the file or none, a proxy or a ProxyError.

Hypothesis feeds them arbitrary bytes and structure-aware mutations of valid files (fields of
TIFF IFDs, ISO-BMFF box headers, JPEG segments and RAF directories set to 0, 1, 2^32-1, the file
size...). The contract: ``inspect`` returns an Inspection or raises InvalidFile, and
``decode_selfie`` returns a picture or raises ImageRejected; nothing else, within a deadline and
without large allocations.

Bugs found here are kept as regression tests with the concrete input (and as ``@example`` on a
property that runs them): the selfie decoder's DDS, AVIF and IM escapes and the TIFF strip-count
CPU amplification, all fixed.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImImagePlugin

from appliance.faces.engine import ImageRejected, decode_selfie
from appliance.ingest.formats import SEARCHABLE_KINDS, Inspection, InvalidFile, inspect
from appliance.ingest.previews import find_preview
from appliance.proxy import ProxyError, make_proxy
from tests import camerafiles as cf
from tests.test_formats import box as bmff_box
from tests.test_formats import camera_exif, cr3_like, ftyp, nef_like, raf_like, tiff_bytes
from tests.test_formats import jpeg_bytes as small_jpeg

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
ROOT = Path(__file__).resolve().parents[1]
# The extensions the issue names, plus a few more from the photo list.
CLAIMED = [".jpg", ".nef", ".cr2", ".cr3", ".arw", ".raf", ".heic", ".dng", ".tif", ".hif", ".orf", ".jpeg"]
PHOTO_KINDS = set(SEARCHABLE_KINDS)
SELFIE_ERRORS = {"not_an_image", "too_large"}
MB = 1 << 20

FAST = settings(
    deadline=2000,  # ms per call: a structure check is ~1 ms; this catches loops, not speed
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module (Hypothesis runs many examples per test function)."""
    return tmp_path_factory.mktemp("fuzz-formats")


def check(path: Path, data: bytes, name: str) -> Inspection | InvalidFile:
    """inspect() on `data` stored as `path`; InvalidFile is returned, anything else raises."""
    path.write_bytes(data)
    return verdict(path, name)


def verdict(path: Path, name: str) -> Inspection | InvalidFile:
    try:
        result: Inspection | InvalidFile = inspect(path, name)
    except InvalidFile as exc:
        result = exc
    if isinstance(result, InvalidFile):
        assert isinstance(result.reason, str) and result.reason, "an InvalidFile must say why"
        assert "\n" not in result.reason and "\r" not in result.reason, "it goes into an FTP reply"
        return result
    assert result.kind in {*PHOTO_KINDS, "video", "other"}
    assert result.searchable == (result.kind in PHOTO_KINDS)
    orientation = result.metadata.orientation
    assert orientation is None or 1 <= orientation <= 8
    if Path(name).suffix.lower() in {e.lower() for e in CLAIMED}:
        assert result.kind != "other", "a file named as a photo is a photo or is refused"
    return result


# --- (a) arbitrary bytes under every claimed extension ----------------------------------------

MAGICS = [
    b"",
    b"\xff\xd8",
    b"\xff\xd8\xff\xe1",
    b"\xff\xd8\xff\xdb",
    b"II*\0",
    b"MM\0*",
    b"IIRO",
    b"IIU\0",
    b"\0\0\0\x18ftypcrx ",
    b"\0\0\0\x18ftypheic",
    b"\0\0\0\x01ftyp",
    b"\0\0\0\0ftypmif1",
    b"FUJIFILMCCD-RAW ",
]


@settings(FAST, max_examples=800)
@given(
    magic=st.sampled_from(MAGICS),
    body=st.binary(max_size=3000),
    extension=st.sampled_from(CLAIMED),
    upper=st.booleans(),
)
def test_arbitrary_bytes_give_an_inspection_or_invalid_file(
    scratch: Path, magic: bytes, body: bytes, extension: str, upper: bool
) -> None:
    name = "DSC_0001" + (extension.upper() if upper else extension)
    check(scratch / "arbitrary.part", magic + body, name)


# --- (b) structure-aware mutations of valid files --------------------------------------------


@dataclass(frozen=True)
class Field:
    """A number inside a file that a parser trusts: where, how wide, which byte order."""

    at: int
    size: int  # 2, 4 or 8 bytes
    order: str  # ">" or "<"
    what: str


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    fields: tuple[Field, ...]
    boxes: tuple[int, ...] = ()  # ISO-BMFF: where each top-level box starts


def tiff_fields(data: bytes, base: int = 0) -> list[Field]:
    """Header pointer, and per IFD: entry count, each entry's type/count/value, next pointer."""
    if data[base : base + 4] not in (b"II*\0", b"MM\0*"):
        return []
    order = "<" if data[base : base + 2] == b"II" else ">"
    fields = [Field(base + 4, 4, order, "first IFD offset")]
    queue = [struct.unpack_from(order + "I", data, base + 4)[0]]
    seen: set[int] = set()
    while queue and len(seen) < 16:
        ifd = queue.pop(0)
        at = base + ifd
        if ifd in seen or at + 2 > len(data):
            continue
        seen.add(ifd)
        (count,) = struct.unpack_from(order + "H", data, at)
        fields.append(Field(at, 2, order, f"entry count of IFD at {ifd}"))
        for index in range(min(count, 64)):
            entry = at + 2 + 12 * index
            if entry + 12 > len(data):
                break
            tag, type_, n, value = struct.unpack_from(order + "HHII", data, entry)
            fields += [
                Field(entry + 2, 2, order, f"type of tag 0x{tag:04X}"),
                Field(entry + 4, 4, order, f"count of tag 0x{tag:04X}"),
                Field(entry + 8, 4, order, f"value/offset of tag 0x{tag:04X}"),
            ]
            if tag in (0x8769, 0x014A) and type_ in (4, 13):
                if n == 1:
                    queue.append(value)
                elif base + value + 4 * n <= len(data):
                    queue += struct.unpack_from(f"{order}{min(n, 8)}I", data, base + value)
        after = at + 2 + 12 * count
        if after + 4 <= len(data):
            fields.append(Field(after, 4, order, f"next-IFD pointer of IFD at {ifd}"))
            queue.append(struct.unpack_from(order + "I", data, after)[0])
    return fields


def jpeg_fields(data: bytes, start: int = 0) -> list[Field]:
    """Segment lengths up to the first scan, frame dimensions, and the EXIF block's TIFF fields."""
    fields: list[Field] = []
    pos = start + 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        code = data[pos + 1]
        if code == 0xFF or code == 0x01 or 0xD0 <= code <= 0xD7:
            pos += 1 if code == 0xFF else 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        fields.append(Field(pos + 2, 2, ">", f"length of segment FF{code:02X}"))
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            fields += [Field(pos + 5, 2, ">", "frame height"), Field(pos + 7, 2, ">", "frame width")]
        if code == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\0\0":
            fields += tiff_fields(data, pos + 10)
        if code == 0xDA:
            break
        pos += 2 + length
    return fields


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"iprp", b"ipco", b"meta"}


def bmff_fields(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[Field]:
    """Every box's size field (and 64-bit largesize), top level and inside the usual containers."""
    end = len(data) if end is None else end
    fields: list[Field] = []
    pos = start
    while pos + 8 <= end and len(fields) < 200:
        size, kind = struct.unpack_from(">I4s", data, pos)
        fields.append(Field(pos, 4, ">", f"size of box {kind!r}"))
        header = 8
        if size == 1 and pos + 16 <= end:
            fields.append(Field(pos + 8, 8, ">", f"largesize of box {kind!r}"))
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            break
        if kind in _CONTAINERS and depth < 4:
            inner = pos + header + (4 if kind == b"meta" else 0)
            fields += bmff_fields(data, inner, min(pos + size, end), depth + 1)
        pos += size
    return fields


def top_level_boxes(data: bytes) -> tuple[int, ...]:
    return tuple(f.at for f in bmff_fields(data, depth=99) if f.what.startswith("size"))


def raf_fields(data: bytes) -> list[Field]:
    names = ["JPEG offset", "JPEG length", "meta offset", "meta length", "CFA offset", "CFA length"]
    fields = [Field(84 + 4 * i, 4, ">", name) for i, name in enumerate(names)]
    (jpeg_at,) = struct.unpack_from(">I", data, 84)
    return fields + jpeg_fields(data, jpeg_at)


def heif_like() -> bytes:
    meta = bmff_box(
        b"meta",
        b"\0\0\0\0" + bmff_box(b"hdlr", b"\0" * 8 + b"pict" + b"\0" * 13) + bmff_box(b"pitm", b"\0" * 6),
    )
    return ftyp(b"heic", b"mif1", b"heic") + meta + bmff_box(b"mdat", bytes(range(256)) * 8)


def real_jpegs() -> list[Path]:
    """The three smallest real photographs (a camera's JPEG, not Pillow's)."""
    if not FACES.is_dir():
        return []
    return sorted(FACES.glob("*.jpg"), key=lambda p: p.stat().st_size)[:3]


@functools.cache
def seeds() -> tuple[Seed, ...]:
    made: list[Seed] = []

    def add(name: str, data: bytes, fields: list[Field], boxes: tuple[int, ...] = ()) -> None:
        assert fields, f"premise: the locator found fields in {name}"
        made.append(Seed(name, data, tuple(fields), boxes))

    for progressive in (False, True):
        data = small_jpeg((40, 30), exif=camera_exif(), progressive=progressive, noise=True)
        add(f"IMG_{int(progressive)}.JPG", data, jpeg_fields(data))
    for path in real_jpegs():
        data = path.read_bytes()
        add(path.name, data, jpeg_fields(data))
    for name, data in [
        ("scan.tif", tiff_bytes((24, 40))),
        ("DSC_0001.NEF", nef_like(">")[0]),
        ("DSC_0002.NEF", nef_like("<")[0]),
    ]:
        add(name, data, tiff_fields(data))
    for mode in ("32", "64", "0"):
        data = cr3_like(mode)[0]
        add(f"IMG_{mode}.CR3", data, bmff_fields(data), top_level_boxes(data))
    heif = heif_like()
    add("IMG_0001.HEIC", heif, bmff_fields(heif), top_level_boxes(heif))
    raf = raf_like()
    add("DSCF0001.RAF", raf, raf_fields(raf))
    return tuple(made)


def interesting(size: int, length: int, at: int) -> list[int]:
    top = (1 << (8 * size)) - 1
    values = {0, 1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 0xFF, 0x100, 0xFFFF, 0x10000}
    values |= {top, top - 1, top >> 1, (top >> 1) + 1, length, length - 1, length + 1, length - at}
    values |= {length - at + 1, length - at - 1, 2 * length, 1 << 32, (1 << 32) - 1, (1 << 63) + 1}
    return sorted(v for v in values if 0 <= v <= top)


@st.composite
def mutated_seed(draw: st.DrawFn) -> tuple[str, bytes, list[str]]:
    """A valid file with 1-4 mutations; returns its name, bytes and what was done to it."""
    seed = draw(st.sampled_from(seeds()))
    data = bytearray(seed.data)
    done: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["field", "field", "field", "cut", "flip", "insert", "dup", "large"]))
        if action == "field":
            field = draw(st.sampled_from(seed.fields))
            if field.at + field.size > len(data):
                continue
            value = draw(
                st.one_of(
                    st.sampled_from(interesting(field.size, len(data), field.at)),
                    st.integers(0, (1 << (8 * field.size)) - 1),
                )
            )
            fmt = field.order + {2: "H", 4: "I", 8: "Q"}[field.size]
            struct.pack_into(fmt, data, field.at, value)
            done.append(f"{field.what} = {value}")
        elif action == "cut":
            near = [f.at + d for f in seed.fields for d in (-1, 0, 1, f.size)]
            cut = draw(st.one_of(st.sampled_from(near), st.integers(0, len(data))))
            del data[max(cut, 0) :]
            done.append(f"cut at {cut}")
        elif action == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
            done.append(f"bit flip at {at}")
        elif action == "insert":
            at = draw(st.integers(0, len(data)))
            junk = draw(st.binary(min_size=1, max_size=40))
            data[at:at] = junk
            done.append(f"{len(junk)} bytes inserted at {at}")
        elif action == "dup" and data:
            at = draw(st.integers(0, len(data) - 1))
            length = draw(st.integers(1, 64))
            data[at:at] = data[at : at + length] * draw(st.integers(1, 8))
            done.append(f"bytes {at}+{length} repeated")
        elif action == "large" and seed.boxes:
            at = draw(st.sampled_from(seed.boxes))
            if at + 8 > len(data):
                continue
            largesize = draw(st.sampled_from([0, 1, 8, 15, 16, 17, len(data) - at, (1 << 32) - 1, 1 << 62]))
            largesize = draw(st.one_of(st.just(largesize), st.integers(0, (1 << 64) - 1)))
            kind = bytes(data[at + 4 : at + 8])
            data[at : at + 8] = struct.pack(">I4sQ", 1, kind, largesize)
            done.append(f"box at {at} given 64-bit size {largesize}")
    return seed.name, bytes(data), done


@settings(FAST, max_examples=800)
@given(mutated=mutated_seed())
def test_mutated_valid_files_give_an_inspection_or_invalid_file(
    scratch: Path, mutated: tuple[str, bytes, list[str]]
) -> None:
    check_bounded(scratch, *mutated[:2])


@pytest.mark.slow
@settings(FAST, max_examples=5000)
@given(mutated=mutated_seed())
def test_mutated_valid_files_give_an_inspection_or_invalid_file_long(
    scratch: Path, mutated: tuple[str, bytes, list[str]]
) -> None:
    check_bounded(scratch, *mutated[:2])


def check_bounded(scratch: Path, name: str, data: bytes) -> None:
    """check(), and inspect's own allocations stay near the file's size."""
    tracemalloc.start()
    try:
        check(scratch / "mutated.part", data, name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB + 2 * len(data), f"inspect allocated {peak / MB:.1f} MB for a {len(data)} byte file"


def jpeg_seeds() -> list[tuple[str, bytes]]:
    found = [(s.name, s.data) for s in seeds() if s.name.lower().endswith(".jpg")]
    for name, data in found:  # premise: the end-of-image marker is the file's last two bytes
        scan = data.index(b"\xff\xda")
        assert data.find(b"\xff\xd9", scan) == len(data) - 2, name
    return found


@settings(FAST, max_examples=200)
@given(
    pick=st.integers(0, 100),
    where=st.floats(0, 1, exclude_max=True),
    tail=st.sampled_from([b"", b"\0" * 4096, b"\xff" * 17, b"\0\xff\0"]),
)
def test_a_jpeg_cut_before_its_end_is_always_rejected(
    scratch: Path, pick: int, where: float, tail: bytes
) -> None:
    """Cut anywhere (and maybe padded, as a pre-allocated or sparse file would be): no EOI."""
    candidates = jpeg_seeds()
    name, data = candidates[pick % len(candidates)]
    cut = int(len(data) * where)
    result = check(scratch / "cut.part", data[:cut] + tail, name)
    assert isinstance(result, InvalidFile), f"{name} cut at {cut} of {len(data)} was accepted"


def test_every_interesting_cut_of_every_seed_is_handled(scratch: Path) -> None:
    """Cut at, before and after every located field: only InvalidFile, and JPEGs always refused."""
    path = scratch / "cut.part"
    for seed in seeds():
        cuts = {c for f in seed.fields for c in (f.at - 1, f.at, f.at + 1, f.at + f.size)}
        cuts = {c for c in cuts if 0 <= c < len(seed.data)} | {0, 1, 2, 8, len(seed.data) - 1}
        path.write_bytes(seed.data)
        for cut in sorted(cuts, reverse=True):  # shrink one file in place: no rewrite per cut
            os.truncate(path, cut)
            result = verdict(path, seed.name)
            if seed.name.lower().endswith(".jpg"):
                assert isinstance(result, InvalidFile), (seed.name, cut)


def _tiff(entries: list[tuple[int, int, int, int]], tail: bytes = b"", order: str = "<") -> bytes:
    magic = b"II*\0" if order == "<" else b"MM\0*"
    out = magic + struct.pack(order + "IH", 8, len(entries))
    for tag, type_, count, value in entries:
        out += struct.pack(order + "HHII", tag, type_, count, value)
    return out + struct.pack(order + "I", 0) + tail


HUGE_DECLARATIONS = {
    "ifd count 65535": b"II*\0\x08\0\0\0\xff\xff" + b"\0" * 64,
    "first IFD at 2^32-1": b"MM\0*\xff\xff\xff\xff" + b"\0" * 64,
    "rational count 2^32-1": _tiff([(0x011A, 5, 0xFFFFFFFF, 8)]),
    "double count 2^32-1 at 0": _tiff([(0x0100, 12, 0xFFFFFFFF, 0)]),
    "strip count 2^32-1": _tiff([(0x0111, 4, 0xFFFFFFFF, 8), (0x0117, 4, 0xFFFFFFFF, 8)]),
    "strip count just over the limit": _tiff([(0x0111, 4, 131_073, 26)], bytes(4 * 131_073)),
    "strip at 2^32-1 of length 2^32-1": _tiff([(0x0111, 4, 1, 0xFFFFFFFF), (0x0117, 4, 1, 0xFFFFFFFF)]),
    "SubIFDs 2^32-1": _tiff([(0x014A, 4, 0xFFFFFFFF, 8)]),
    "EXIF IFD pointing at itself": _tiff([(0x8769, 4, 1, 8)]),
    "next IFD loop": b"II*\0\x08\0\0\0\0\0\x08\0\0\0",
    "box size 0 first": struct.pack(">I4s", 0, b"ftyp") + b"heic\0\0\0\0mif1",
    "box size 1 largesize 2^64-1": ftyp(b"crx ") + struct.pack(">I4sQ", 1, b"moov", (1 << 64) - 1),
    "box size 1 largesize 0": ftyp(b"crx ") + struct.pack(">I4sQ", 1, b"moov", 0),
    "box size 2^32-1": ftyp(b"heic") + struct.pack(">I4s", 0xFFFFFFFF, b"meta"),
    "box size 7": ftyp(b"heic") + struct.pack(">I4s", 7, b"meta") + b"\0" * 16,
    "box size 1 cut": ftyp(b"heic") + struct.pack(">I4s", 1, b"meta") + b"\0\0",
    "ftyp 1 largesize 16": struct.pack(">I4sQ", 1, b"ftyp", 16) + b"heic",
    "raf offsets 2^32-1": b"FUJIFILMCCD-RAW " + b"\0" * 68 + b"\xff" * 24 + b"\0" * 20,
    "raf jpeg at 0": b"FUJIFILMCCD-RAW " + b"\0" * 68 + struct.pack(">6I", 0, 108, 0, 0, 0, 0) + b"\0" * 4,
    "jpeg segment length 0": b"\xff\xd8\xff\xe1\0\0" + b"\0" * 32 + b"\xff\xd9",
    "jpeg segment length 1": b"\xff\xd8\xff\xe0\0\x01" + b"\0" * 32 + b"\xff\xd9",
    "jpeg 4096 fill bytes": b"\xff\xd8" + b"\xff" * 5000 + b"\xd9",
    "jpeg exif ifd count 65535": b"\xff\xd8\xff\xe1\0\x20Exif\0\0II*\0\x08\0\0\0\xff\xff" + b"\0" * 12,
}


@pytest.mark.parametrize("case", list(HUGE_DECLARATIONS))
@pytest.mark.parametrize("name", ["x.jpg", "x.nef", "x.cr3", "x.raf", "x.heic"])
def test_huge_declared_lengths_offsets_and_counts(scratch: Path, case: str, name: str) -> None:
    data = HUGE_DECLARATIONS[case]
    started = time.perf_counter()
    tracemalloc.start()
    try:
        check(scratch / "huge.part", data, name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5, "a few hundred bytes must not take seconds"
    assert peak < 8 * MB


def many_strip_ifds(ifds: int = 64, pointers: int = 131_072) -> bytes:
    """A 0.5 MB TIFF whose every IFD (all 64 allowed) lists the maximum 131,072 strips, tiles and
    embedded JPEGs, all sharing one array of zeros: valid, and 25 million bounds checks."""
    tags = (0x0111, 0x0117, 0x0144, 0x0145, 0x0201, 0x0202)
    ifd_size = 2 + 12 * len(tags) + 4
    shared = 8 + ifds * ifd_size
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    for index in range(ifds):
        out += struct.pack("<H", len(tags))
        for tag in tags:
            out += struct.pack("<HHII", tag, 4, pointers, shared)
        out += struct.pack("<I", 8 + (index + 1) * ifd_size if index + 1 < ifds else 0)
    return bytes(out + bytes(4 * pointers))


def check_seconds(path: Path, data: bytes, repeat: int = 1) -> float:
    """The fastest of `repeat` structure checks of `data` (valid or not)."""
    path.write_bytes(data)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        with contextlib.suppress(InvalidFile):
            inspect(path, "DSC_0001.NEF")
        best = min(best, time.perf_counter() - started)
    return best


def test_many_strip_ifds_cost_no_more_than_one(scratch: Path) -> None:
    """64 IFDs that all list the same 131,072 strips, against one IFD listing them, in files of
    the same size (0.5 MB): the check may accept or refuse either, but not spend 64 times the
    work on the first. A ratio, not a time, so a loaded machine cannot make it pass or fail."""
    one = check_seconds(scratch / "strips.part", many_strip_ifds(ifds=1), repeat=3)
    many = check_seconds(scratch / "strips.part", many_strip_ifds())
    assert many < 8 * one + 0.05, f"64 IFDs took {many:.2f} s, one {one:.3f} s ({many / one:.0f}x)"


# --- the selfie decoder ------------------------------------------------------------------------


def selfie(data: bytes) -> str:
    """decode_selfie's verdict: "ok" or the ImageRejected code. Warnings are ignored as in the box
    (pytest turns them into errors here; decode_selfie still turns decompression-bomb warnings
    into errors itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            array, jpeg = decode_selfie(data)
        except ImageRejected as exc:
            rejected = exc
        else:
            rejected = None
    if rejected is not None:
        assert rejected.code in SELFIE_ERRORS, rejected.code
        assert str(rejected) and "Traceback" not in str(rejected)
        return rejected.code
    assert array.ndim == 3 and array.shape[2] == 3 and max(array.shape[:2]) <= 1280
    assert jpeg.startswith(b"\xff\xd8")
    return "ok"


def encode(fmt: str, mode: str = "RGB", size: tuple[int, int] = (48, 40), **options: object) -> bytes:
    image = Image.effect_noise(size, 50).convert(mode)
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Pillow 13 deprecates writing IM
        image.save(out, fmt, **options)
    return out.getvalue()


@functools.cache
def selfie_seeds() -> dict[str, bytes]:
    exif = Image.Exif()
    exif[0x0112] = 6
    made = {
        "jpeg-exif": encode("JPEG", exif=exif),
        "jpeg-progressive": encode("JPEG", "L", progressive=True),
        "jpeg-cmyk": encode("JPEG", "CMYK"),
        "png": encode("PNG", "RGBA"),
        "png-16": encode("PNG", "I;16"),
        "png-palette": encode("PNG", "P"),
        "webp": encode("WEBP"),
        "webp-lossless": encode("WEBP", lossless=True),
        "gif": encode("GIF", "P", save_all=True, append_images=[Image.new("P", (48, 40))]),
        "tiff": encode("TIFF"),
        "tiff-lzw": encode("TIFF", compression="tiff_lzw"),
        "tiff-jpeg": encode("TIFF", compression="jpeg"),
        "bmp": encode("BMP"),
        "ico": encode("ICO"),
        "ppm": encode("PPM"),
        "tga": encode("TGA", compression="tga_rle"),
        "jpeg2000": encode("JPEG2000"),
        "qoi": encode("QOI"),
        "pcx": encode("PCX"),
        "sgi": encode("SGI"),
        "dds": encode("DDS"),
        "avif": encode("AVIF"),
        "im": encode("IM"),
    }
    for path in real_jpegs()[:1]:
        made["real-jpeg"] = path.read_bytes()
    png = FACES / "collins-astronaut.png"
    if png.is_file():
        made["real-png"] = png.read_bytes()
    return made


def _is_im(data: bytes) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ImImagePlugin.ImImageFile(io.BytesIO(data)).close()
    except Exception:
        return False
    return True


def _dds_without_pixel_format() -> bytes:
    data = bytearray(encode("DDS", size=(16, 16)))
    data[80:84] = b"\0\0\0\0"  # DDS_PIXELFORMAT.dwFlags = 0
    return bytes(data)


def _avif_with_missing_primary_item() -> bytes:
    data = bytearray(encode("AVIF", size=(16, 16)))
    at = data.index(b"pitm")
    data[at + 8 : at + 10] = b"\0\x07"  # primary item 7: no such item
    return bytes(data)


def _im_with_fractional_size() -> bytes:
    return encode("IM", size=(48, 40)).replace(b"48*40", b"48*40.", 1)


ESCAPES = {
    "dds-pixel-format-flags-0": (_dds_without_pixel_format, "NotImplementedError from DdsImagePlugin._open"),
    "avif-missing-primary-item": (_avif_with_missing_primary_item, "RuntimeError from the AVIF decoder"),
    "im-fractional-size": (_im_with_fractional_size, "TypeError from Image.core.new in load()"),
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            name,
        )
        for name, (_, why) in ESCAPES.items()
    ],
)
def test_selfie_decoder_regressions(case: str) -> None:
    assert selfie(ESCAPES[case][0]()) in SELFIE_ERRORS


@settings(database=None, phases=[Phase.explicit], deadline=None)
@given(data=st.binary())
@example(data=_dds_without_pixel_format())
@example(data=_avif_with_missing_primary_item())
@example(data=_im_with_fractional_size())
def test_selfie_decoder_known_escapes_property(data: bytes) -> None:
    selfie(data)


SELFIE_MAGICS = [
    b"",
    b"\xff\xd8\xff\xe0",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"RIFF\0\0\0\0WEBPVP8 ",
    b"II*\0",
    b"MM\0*",
    b"BM",
    b"\0\0\1\0",
    b"P6\n",
    b"qoif",
    b"\0\0\0\x0cjP  \r\n\x87\n",
    b"8BPS",
    b"\x0a\x05\x01\x08",
    b"%!PS-Adobe-3.0 EPSF-3.0\n",
    b"\x01\xda",
]


@settings(FAST, deadline=5000, max_examples=500)
@given(magic=st.sampled_from(SELFIE_MAGICS), body=st.binary(max_size=2000))
def test_selfie_decoder_on_arbitrary_bytes(magic: bytes, body: bytes) -> None:
    data = magic + body
    selfie(data)


@st.composite
def mutated_picture(draw: st.DrawFn) -> bytes:
    pictures = selfie_seeds()
    data = bytearray(pictures[draw(st.sampled_from(sorted(pictures)))])
    for _ in range(draw(st.integers(1, 5))):
        if not data:
            break
        head = draw(st.booleans())  # headers are where the sizes and offsets are
        at = draw(st.integers(0, min(len(data), 96) - 1 if head else len(data) - 1))
        action = draw(st.sampled_from(["byte", "u32", "u16", "cut", "insert", "delete"]))
        if action == "byte":
            data[at] = draw(st.integers(0, 255))
        elif action in ("u32", "u16"):
            width = 4 if action == "u32" else 2
            top = (1 << (8 * width)) - 1
            value = draw(st.sampled_from([0, 1, 2, 0x7F, 0xFF, top, top >> 1, 20_001, 65_535]))
            order = draw(st.sampled_from("<>"))
            data[at : at + width] = struct.pack(order + ("I" if width == 4 else "H"), value & top)
        elif action == "cut":
            del data[max(at, 1) :]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@settings(FAST, deadline=5000, max_examples=500)
@given(data=mutated_picture())
def test_selfie_decoder_on_mutated_pictures(data: bytes) -> None:
    selfie(data)


@pytest.mark.slow
@settings(FAST, deadline=5000, max_examples=4000)
@given(data=mutated_picture())
def test_selfie_decoder_on_mutated_pictures_long(data: bytes) -> None:
    selfie(data)


def test_valid_selfie_seeds_decode() -> None:
    """Premise of the mutations above: every seed in a format phones upload decodes; the others
    (formats the decoder no longer opens: ICO, TGA, JPEG 2000, DDS, AVIF...) are a clean refusal."""
    phone = {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"}  # MPO: opened by the JPEG plugin
    for name, data in selfie_seeds().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Pillow's IM plugin says it is going
            with Image.open(io.BytesIO(data)) as opened:
                kind = opened.format
        assert selfie(data) == ("ok" if kind in phone else "not_an_image"), name


# --- decompression bombs, in a child process with a memory ceiling ----------------------------


def _png(width: int, height: int, mode: int = 2) -> bytes:
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
    idat = zlib.compress(b"\0" * 200_000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg_declaring(width: int, height: int, *, progressive: bool = False) -> bytes:
    data = bytearray(small_jpeg((16, 16), progressive=progressive))
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _gif(width: int, height: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\0"
    return screen + image + b";"


def _tiff_declaring(width: int, height: int) -> bytes:
    image = Image.new("L", (16, 16))
    out = io.BytesIO()
    image.save(out, "TIFF")
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.size == (16, 16)
    fields = {f.what: f for f in tiff_fields(data)}
    patched = bytearray(data)
    for tag, value in ((0x0100, width), (0x0101, height)):
        field = fields[f"value/offset of tag 0x{tag:04X}"]
        type_field = fields[f"type of tag 0x{tag:04X}"]
        struct.pack_into(field.order + "H", patched, type_field.at, 4)
        struct.pack_into(field.order + "I", patched, field.at, value)
    return bytes(patched)


def _webp_canvas(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + encode("WEBP", size=(16, 16))[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


BOMBS = {
    "png-40000x40000": lambda: _png(40_000, 40_000),
    "png-24mp-in-a-few-kb": lambda: _png(4_890, 4_890),
    "png-rgba-1x2^31": lambda: _png(1, 0x7FFFFFFF, 6),
    "jpeg-65500x65500": lambda: _jpeg_declaring(65_500, 65_500),
    "jpeg-7000x7000-baseline": lambda: _jpeg_declaring(7_000, 7_000),
    "jpeg-7000x7000-progressive": lambda: _jpeg_declaring(7_000, 7_000, progressive=True),
    "gif-65535x65535": lambda: _gif(65_535, 65_535),
    "gif-4800x4800": lambda: _gif(4_800, 4_800),
    "tiff-1e6x1e6": lambda: _tiff_declaring(1_000_000, 1_000_000),
    "tiff-4000x6000": lambda: _tiff_declaring(4_000, 6_000),
    "webp-16384x16384": lambda: _webp_canvas(16_384, 16_384),
    "bmp-header-30000x30000": lambda: (
        b"BM"
        + struct.pack("<IHHI", 0, 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, 30_000, 30_000, 1, 24, 0, 0, 0, 0, 0, 0)
    ),
}

_BOMB_CHILD = r"""
import json, resource, sys, warnings
from appliance.faces.engine import ImageRejected, decode_selfie
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
ceiling = vm + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
warnings.simplefilter("ignore")
with open(sys.argv[1], "rb") as handle:
    data = handle.read()
try:
    decode_selfie(data)
    verdict = "ok"
except ImageRejected as exc:
    verdict = exc.code
except BaseException as exc:
    verdict = f"{type(exc).__name__}: {exc}"
print(json.dumps(verdict))
"""


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_decompression_bombs_are_refused_within_a_memory_ceiling(scratch: Path, bomb: str) -> None:
    """Each bomb is decoded in a child whose address space may grow by at most 1 GiB: a bomb that
    makes the decoder allocate gigabytes fails there with MemoryError instead of taking this
    machine down. Only ImageRejected (or a real picture) is acceptable."""
    path = scratch / f"{bomb}.bin"
    path.write_bytes(BOMBS[bomb]())
    child = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD, str(path), str(1 << 30)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    verdict = json.loads(child.stdout.strip().splitlines()[-1])
    assert verdict in {*SELFIE_ERRORS, "ok"}, f"{bomb}: {verdict}"
    if bomb.startswith(("png-40000", "jpeg-65500", "gif-65535", "tiff-1e6", "webp-16384", "bmp")):
        assert verdict in SELFIE_ERRORS, f"{bomb} was decoded"


# --- embedded RAW previews (the proxy's parser) --------------------------------------------


@functools.cache
def preview_seeds() -> tuple[Seed, ...]:
    """RAWs with the structure bodies write around a small preview, plus the inspect seeds."""
    preview = small_jpeg((48, 32), noise=True)
    thumb = small_jpeg((16, 12))
    made = [s for s in seeds() if not s.name.endswith((".JPG", ".jpg"))]
    for name, data in [
        ("DSC_0010.NEF", cf.nef(preview, orientation=6)),
        ("DSC00010.ARW", cf.arw(preview, thumb)),
        ("L1000010.DNG", cf.dng(preview)),
        ("P1000010.RW2", cf.rw2(preview)),
        ("P1010010.ORF", cf.orf(preview)),
    ]:
        # the fields of the same structure under the plain TIFF magic (RW2's and ORF's differ)
        made.append(Seed(name, data, tuple(tiff_fields(b"II*\0" + data[4:])), ()))
    data = cf.cr3(preview, thumb)
    made.append(Seed("IMG_0010.CR3", data, tuple(bmff_fields(data)), top_level_boxes(data)))
    data = cf.raf(preview)
    made.append(Seed("DSCF0010.RAF", data, tuple(raf_fields(data)), ()))
    return tuple(made)


@st.composite
def mutated_raw(draw: st.DrawFn) -> tuple[str, bytes]:
    seed = draw(st.sampled_from(preview_seeds()))
    data = bytearray(seed.data)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["field", "field", "cut", "flip"]))
        if action == "field":
            field = draw(st.sampled_from(seed.fields))
            if field.at + field.size > len(data):
                continue
            value = draw(st.sampled_from(interesting(field.size, len(data), field.at)))
            struct.pack_into(field.order + {2: "H", 4: "I", 8: "Q"}[field.size], data, field.at, value)
        elif action == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif data:
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    return seed.name, bytes(data)


@settings(FAST, max_examples=400)
@given(mutated=mutated_raw())
def test_mutated_raws_give_a_preview_inside_the_file_or_none(
    scratch: Path, mutated: tuple[str, bytes]
) -> None:
    """find_preview never raises for a broken structure, and what it finds lies in the file."""
    name, data = mutated
    path = scratch / name
    path.write_bytes(data)
    found = find_preview(path)
    if found is not None:
        assert found.offset >= 0 and found.offset + found.length <= len(data)
        assert data[found.offset : found.offset + 2] == b"\xff\xd8"


# Pillow warns about odd metadata of a mutated plain TIFF while decoding it: a log line on the box
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(FAST, max_examples=150)
@given(mutated=mutated_raw())
def test_mutated_raws_give_a_proxy_or_a_proxy_error(scratch: Path, mutated: tuple[str, bytes]) -> None:
    name, data = mutated
    path = scratch / name
    path.write_bytes(data)
    with contextlib.suppress(ProxyError):
        make_proxy(path, scratch / "proxy.jpg", long_edge=64)

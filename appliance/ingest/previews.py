"""Embedded previews of RAW files: where the largest JPEG a camera wrote inside its RAW lies,
and the RAW's orientation. The proxy of a RAW is made from this JPEG (``appliance.rawpreview``
asks libraw first; this is what answers for a body libraw does not know yet).

Where bodies put their previews, all found here:

- TIFF-based RAW (NEF/NRW, ARW/SR2, CR2, DNG, PEF, SRW, ORF, RW2): in any IFD (IFD0, its chain,
  SubIFDs, the EXIF IFD) as ``JPEGInterchangeFormat``/``Length`` (0x0201/0x0202), or as the one
  strip of an IFD compressed as JPEG (6 or 7: CR2's IFD0, DNG preview SubIFDs); Panasonic's
  ``JpgFromRaw`` (0x002E, RW2); Olympus's ``PreviewImageStart``/``Length`` in the
  makernote's CameraSettings (ORF).
- CR3 (ISO-BMFF): the full-size JPEG that is the first sample of track 1 (``moov/trak/mdia/
  minf/stbl``: ``stsz`` its size, ``co64``/``stco`` its offset), the ``PRVW`` box inside the
  top-level preview ``uuid`` box (1620 px), and the small ``THMB`` inside ``moov``'s Canon
  ``uuid`` box.
- RAF: the JPEG whose offset and length the header gives.

A candidate counts only if it lies inside the file and is a baseline, extended or progressive
JPEG (SOF0-2): a lossless JPEG (SOF3) is sensor data (CR2's and DNG's raw strips), not a
picture. The largest by pixels wins (ties: the longer, then the earlier).

Reuses ``formats``' bounded readers: only headers, IFDs and box headers are read, never the
whole file, and every loop is bounded. Pure; runs on the thread that makes a proxy (a face
worker thread, or an executor thread of the box). Raises ``OSError`` only when the file cannot
be read; a broken structure just means no preview.
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from appliance.ingest.formats import (
    CR3_META_UUID,
    CR3_PREVIEW_UUID,
    RAF_MAGIC,
    RAW_PHOTOMETRIC,
    TIFF_MAGICS,
    Entry,
    InvalidFile,
    Source,
    Tiff,
    bmff_children,
    cr3_metadata,
)

__all__ = ["MAX_PREVIEW_BYTES", "Preview", "find_preview", "plain_tiff", "read_preview"]

MAX_PREVIEW_BYTES = 64 * 1024 * 1024  # a full-size 100 MP preview JPEG is ~30 MB
_MAX_SEGMENTS = 512  # JPEG marker segments walked to find a candidate's frame header
_JPEG_SEARCH = 64  # bytes of a CR3 PRVW/THMB box searched for the JPEG's start
_OLYMPUS = b"OLYMPUS\0"
_MAX_TRACKS = 8  # CR3 tracks looked at for a JPEG sample (bodies write 4 or 5)
_TRACK_PATH = (b"mdia", b"minf", b"stbl")


@dataclass(frozen=True, slots=True)
class Preview:
    offset: int
    length: int
    width: int
    height: int
    orientation: int | None  # the RAW's EXIF orientation (1-8); None: the RAW does not say


def find_preview(path: Path) -> Preview | None:
    """The largest embedded preview JPEG of the RAW at ``path``, or None if it has none."""
    with open(path, "rb") as file:
        src = Source(os.fstat(file.fileno()).st_size, "the file", file=file)
        try:
            head = src.read(0, min(src.size, 16), "file header")
            if head[:4] in TIFF_MAGICS:
                candidates, orientation = _tiff(src)
            elif head[4:8] == b"ftyp":
                candidates, orientation = _cr3(src)
            elif head.startswith(RAF_MAGIC):
                jpeg_at, jpeg_length = struct.unpack(">II", src.read(84, 8, "RAF header"))
                candidates, orientation = [(jpeg_at, jpeg_length)], None
            else:
                return None
        except InvalidFile:
            return None
        best: Preview | None = None
        for offset, length in sorted(set(candidates)):
            size = _jpeg_size(src, offset, length)
            if size is None:
                continue
            found = Preview(offset, length, size[0], size[1], orientation)
            if best is None or (found.width * found.height, found.length) > (
                best.width * best.height,
                best.length,
            ):
                best = found
        return best


def plain_tiff(path: Path) -> bool:
    """A TIFF without sensor data (a scan, an export): its own pixels are the picture."""
    with open(path, "rb") as file:
        src = Source(os.fstat(file.fileno()).st_size, "the file", file=file)
        try:
            if src.read(0, min(src.size, 4), "file header") not in (b"II*\0", b"MM\0*"):
                return False
            reader = Tiff(src, strict=False)
            reader.walk()
        except InvalidFile:
            return False
        return not reader.is_raw()


def read_preview(path: Path, preview: Preview) -> bytes:
    """The bytes of ``preview`` (one bounded read)."""
    if preview.length > MAX_PREVIEW_BYTES:
        raise OSError(f"the preview of {path.name} is over {MAX_PREVIEW_BYTES >> 20} MB")
    with open(path, "rb") as file:
        file.seek(preview.offset)
        data = file.read(preview.length)
    if len(data) != preview.length:
        raise OSError(f"{path.name} shrank while its preview was read")
    return data


def _tiff(src: Source) -> tuple[list[tuple[int, int]], int | None]:
    reader = Tiff(src, strict=False)
    with contextlib.suppress(InvalidFile):  # a damaged tail: keep the IFDs read before it
        reader.walk()
    candidates: list[tuple[int, int]] = []
    for entries in reader.ifds:
        start, length = reader.first(entries.get(0x0201)), reader.first(entries.get(0x0202))
        if start and length:
            candidates.append((start, length))
        compression = reader.first(entries.get(0x0103))
        photometric = reader.first(entries.get(0x0106))
        if compression in (6, 7) and photometric not in RAW_PHOTOMETRIC and 0x0111 in entries:
            with contextlib.suppress(InvalidFile):
                strip = _one_strip(reader, entries)
                if strip:
                    candidates.append(strip)
        jpg_from_raw = entries.get(0x002E)  # Panasonic RW2: the JPEG is the tag's value
        if jpg_from_raw is not None and jpg_from_raw.type == 7:
            candidates.append((jpg_from_raw.at, jpg_from_raw.count))
        makernote = entries.get(0x927C)
        if makernote is not None and makernote.type == 7:
            with contextlib.suppress(InvalidFile):
                candidates.extend(_olympus(src, reader, makernote.at, makernote.count))
    orientation = reader.first(reader.ifd0.get(0x0112))
    return candidates, orientation if orientation is not None and 1 <= orientation <= 8 else None


def _one_strip(reader: Tiff, entries: dict[int, Entry]) -> tuple[int, int] | None:
    """The IFD's image as one JPEG: a single strip (several strips are separate JPEG streams
    sharing tables, as JPEG-compressed TIFFs write them: not a preview)."""
    offsets_entry, counts_entry = entries.get(0x0111), entries.get(0x0117)
    if offsets_entry is None or counts_entry is None:
        return None
    offsets, counts = reader.ints(offsets_entry, 1), reader.ints(counts_entry, 1)
    return (offsets[0], counts[0]) if len(offsets) == len(counts) == 1 else None


def _olympus(src: Source, reader: Tiff, at: int, count: int) -> list[tuple[int, int]]:
    """ORF: the makernote ('OLYMPUS\\0II\\3\\0', offsets from its start) points to the
    CameraSettings IFD (0x2020), whose 0x0101/0x0102 are the preview's start and length."""
    if count < 16 or src.read(at, 8, "Olympus makernote") != _OLYMPUS:
        return []
    order = "<" if src.read(at + 8, 2, "Olympus makernote") == b"II" else ">"
    main = _ifd(src, order, at + 12)
    settings = main.get(0x2020)
    if settings is None:
        return []
    sub = _ifd(src, order, at + settings)
    start, length = sub.get(0x0101), sub.get(0x0102)
    return [(at + start, length)] if start and length else []


def _ifd(src: Source, order: str, offset: int) -> dict[int, int]:
    """The first value of each integer entry of a small IFD (makernote IFDs)."""
    (count,) = struct.unpack(order + "H", src.read(offset, 2, "makernote IFD"))
    block = src.read(offset + 2, 12 * min(count, 512), "makernote IFD")
    values: dict[int, int] = {}
    for index in range(min(count, 512)):
        tag, type_, _n, value = struct.unpack_from(order + "HHII", block, 12 * index)
        if type_ == 3:
            value = struct.unpack_from(order + "H", block, 12 * index + 8)[0]
        if type_ in (3, 4, 7, 13):
            values[tag] = value
    return values


def _cr3(src: Source) -> tuple[list[tuple[int, int]], int | None]:
    candidates: list[tuple[int, int]] = []
    orientation = None
    for box_type, payload, end in bmff_children(src, 0, src.size):
        if box_type == CR3_PREVIEW_UUID:  # 8 bytes, then the PRVW box
            for child, at, child_end in bmff_children(src, payload + 8, end):
                if child == b"PRVW":
                    candidates.extend(_boxed_jpeg(src, at, child_end))
        elif box_type == b"moov":
            orientation = cr3_metadata(src, payload, end).orientation
            tracks = 0
            for child, at, child_end in bmff_children(src, payload, end):
                if child == b"trak" and tracks < _MAX_TRACKS:
                    tracks += 1
                    with contextlib.suppress(InvalidFile):
                        candidates.extend(_first_sample(src, at, child_end))
                if child == CR3_META_UUID:
                    for grandchild, g_at, g_end in bmff_children(src, at, child_end):
                        if grandchild == b"THMB":
                            candidates.extend(_boxed_jpeg(src, g_at, g_end))
    return candidates, orientation


def _first_sample(src: Source, start: int, end: int) -> list[tuple[int, int]]:
    """Where the first sample of a track lies (Canon's track 1 is the full-size JPEG; the other
    tracks are sensor data and metadata, which ``_jpeg_size`` then refuses)."""
    for name in _TRACK_PATH:
        found = [(at, box_end) for kind, at, box_end in bmff_children(src, start, end) if kind == name]
        if not found:
            return []
        start, end = found[0]
    tables = {kind: (at, box_end) for kind, at, box_end in bmff_children(src, start, end)}
    if b"stsz" not in tables or not tables.keys() & {b"co64", b"stco"}:
        return []
    at, _ = tables[b"stsz"]
    size, count = struct.unpack(">II", src.read(at + 4, 8, "CR3 stsz"))
    if size == 0 and count:
        (size,) = struct.unpack(">I", src.read(at + 12, 4, "CR3 stsz entry"))
    if b"co64" in tables:
        at, _ = tables[b"co64"]
        (offset,) = struct.unpack(">Q", src.read(at + 8, 8, "CR3 co64 entry"))
    else:
        at, _ = tables[b"stco"]
        (offset,) = struct.unpack(">I", src.read(at + 8, 4, "CR3 stco entry"))
    return [(offset, size)] if size else []


def _boxed_jpeg(src: Source, start: int, end: int) -> list[tuple[int, int]]:
    """The JPEG inside a PRVW or THMB box: it starts within the box's first bytes (after its
    version, size and length fields) and runs to the box's end."""
    head = src.read(start, min(_JPEG_SEARCH, end - start), "CR3 preview box")
    found = head.find(b"\xff\xd8\xff")
    return [(start + found, end - start - found)] if found >= 0 else []


def _jpeg_size(src: Source, start: int, length: int) -> tuple[int, int] | None:
    """(width, height) of a baseline, extended or progressive JPEG lying in [start, start+length)
    of the file; None for anything else."""
    end = start + length
    if start < 0 or length < 4 or end > src.size:
        return None
    try:
        if src.read(start, 2, "preview JPEG") != b"\xff\xd8":
            return None
        pos = start + 2
        for _ in range(_MAX_SEGMENTS):
            prefix, code = src.read(pos, 2, "preview JPEG marker")
            if prefix != 0xFF:
                return None
            if code == 0xFF:
                pos += 1
                continue
            (size,) = struct.unpack(">H", src.read(pos + 2, 2, "preview JPEG segment"))
            if size < 2 or pos + 2 + size > end:
                return None
            if code in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", src.read(pos + 5, 4, "preview JPEG frame"))
                return (width, height) if width and height else None
            if (0xC3 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC)) or code == 0xDA:
                return None  # lossless or arithmetic-coded: sensor data, or not for Pillow
            pos += 2 + size
    except InvalidFile:
        return None
    return None

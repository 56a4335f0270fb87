"""Structure checks for received files: is this upload complete, what kind of file is it.

pyftpdlib reports an upload as finished when the data socket closes, even when the
camera's WiFi dropped halfway through the file. Before the server answers "226",
``inspect`` checks the file's *structure* so that a truncated or corrupt photo is never
accepted, and reads the little metadata ingest needs (capture time, body serial, make,
model, orientation, pixel size).

Formats, recognised by content (magic bytes), never by name:

- JPEG: marker segments up to the first scan must fit in the file; an end-of-image
  marker must follow the scan data (FF D9 never occurs inside entropy-coded data).
- TIFF and TIFF-based RAW (NEF, NRW, ARW, SR2, DNG, CR2, PEF, ORF, RW2, TIF): every IFD,
  out-of-line tag value, strip, tile and embedded JPEG must lie inside the file.
- ISO-BMFF (CR3, HEIF/HIF/AVIF, MP4/MOV): top-level box sizes must add up to the file size.
- Fujifilm RAF: the embedded JPEG and the CFA data must end inside the file.
- PNG: the last chunk must be IEND. WebP: the RIFF size must be the file's.

Every TIFF structure is kind "raw" (a RAW, or a plain TIFF: ``Tiff.is_raw`` tells them apart
when a picture is made of it).
``SEARCHABLE_KINDS`` is the one definition of which kinds the face search indexes: ingest records
it per photo (``photos.searchable``) and every query reads that column.

Anything else is "other" and is not checked, unless its name claims a photo format.

Cheap and safe on hostile input: only headers and tails are read (never a whole file),
every loop over file data is bounded (IFD, entry, segment and box counts) and IFD
cycles are cut. Pure: no threads, no state; called concurrently from the FTP session
threads and the hot-folder thread. Raises ``InvalidFile`` for a broken file; ``OSError``
only if the file cannot be opened or read at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import mmap
import os
import pathlib
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["SEARCHABLE_KINDS", "Inspection", "InvalidFile", "Metadata", "inspect"]

# Extensions that promise a photo: such a file must have a recognised photo structure.
_PHOTO_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".nef", ".nrw", ".arw", ".sr2", ".srf", ".dng", ".cr2", ".cr3"}
    | {".heic", ".heif", ".hif", ".tif", ".tiff", ".orf", ".rw2", ".pef", ".raf", ".srw"}
    | {".png", ".webp"}
)
# The photos the face search indexes (a proxy is made of each); video and sidecars never are.
SEARCHABLE_KINDS = frozenset({"jpeg", "raw", "cr3", "heif", "png", "webp"})
# Kinds whose frame may be the RAW half of a RAW+JPEG pair (appliance/store/schema.py pairs them).
RAW_KINDS = frozenset({"raw", "cr3"})

TIFF_MAGICS = (b"II*\0", b"MM\0*", b"IIRO", b"IIRS", b"MMOR", b"IIU\0")
RAF_MAGIC = b"FUJIFILMCCD-RAW "
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\0\0\0\0IEND\xaeB`\x82"
CR3_META_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")  # moov/uuid: CMT1-4, THMB
CR3_PREVIEW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")  # top-level uuid: PRVW
_MAX_META_BOX = 256 * 1024  # bytes read from one CR3 metadata box (CMT1, CMT2)
_MAX_CHILD_BOXES = 256  # child boxes walked inside one ISO-BMFF box
# Sensor data: CFA and LinearRaw photometric interpretations, RAW-only compression codes.
RAW_PHOTOMETRIC = frozenset({32803, 34892})
_RAW_COMPRESSION = frozenset({262, 32767, 32769, 32770, 32772, 34316, 34713, 65000, 65535})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif"})

# Bounds on work done for one file, whatever the file claims.
_MAX_IFDS = 64
_MAX_IFD_ENTRIES = 4096
_MAX_DATA_POINTERS = 131_072  # strips or tiles in one IFD
_MAX_TOTAL_DATA_POINTERS = 262_144  # in the whole file: bounds the checking work
_MAX_JPEG_SEGMENTS = 4096  # marker segments (and fill bytes) before the first scan
_MAX_BOXES = 100_000  # top-level ISO-BMFF boxes
_JPEG_TAIL = 64 * 1024  # where to look for the end-of-image marker
_MAX_TEXT = 256  # bytes read from an ASCII tag

# TIFF field types (1-12, 13 = IFD): size in bytes; struct format for the unsigned integers.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_UINT_FORMATS = {1: "B", 3: "H", 4: "I", 13: "I"}
# (offsets tag, byte counts tag, what the data is) whose data must end inside the file.
_DATA_TAGS = (
    (0x0111, 0x0117, "strip"),
    (0x0144, 0x0145, "tile"),
    (0x0201, 0x0202, "embedded JPEG"),
)

_EXIF_DATE = re.compile(r"([0-9]{4}):([0-9]{2}):([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})")
_EXIF_OFFSET = re.compile(r"[+-][0-9]{2}:[0-9]{2}")


class InvalidFile(Exception):
    """The file's structure is broken (truncated or corrupt).

    ``.reason`` is a short operator-facing sentence (it goes into the FTP reply).
    """

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Metadata:
    """What ingest records about a photo; every field is None when the file does not say."""

    capture_time: str | None  # ISO 'YYYY-MM-DDTHH:MM:SS[.fff][+HH:MM]', camera local time
    body_serial: str | None
    make: str | None
    model: str | None
    orientation: int | None  # EXIF orientation 1-8
    width: int | None  # pixel size of the main image
    height: int | None


@dataclass(frozen=True, slots=True)
class Inspection:
    """Result of a successful structure check."""

    kind: str  # "jpeg", "raw" (TIFF-based RAW, TIFF, RAF), "cr3", "heif", "png", "webp", "video", "other"
    searchable: bool  # a photo the face search can index
    metadata: Metadata


_NO_METADATA = Metadata(None, None, None, None, None, None, None)


def inspect(path: pathlib.Path, name: str) -> Inspection:
    """Check structure of the file at path. Raises InvalidFile.

    `name` is the camera's original file name; only its extension matters. Content decides
    the format. A file of no known format is accepted as "other" unless its extension
    (case-insensitive) is a photo extension such as .JPG or .NEF.
    """
    with open(path, "rb") as file:
        src = Source(os.fstat(file.fileno()).st_size, "the file", file=file)
        head = src.read(0, min(src.size, 16), "file header")
        if head.startswith(b"\xff\xd8"):
            return _inspect_jpeg(src)
        if head[:4] in TIFF_MAGICS:
            return _inspect_tiff(src)
        if head[4:8] == b"ftyp":
            return _inspect_bmff(src)
        if head.startswith(RAF_MAGIC):
            return _inspect_raf(src)
        if head.startswith(_PNG_MAGIC):
            return _inspect_png(src)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _inspect_webp(src)
    extension = pathlib.PurePath(name).suffix.lower()
    if extension in _PHOTO_EXTENSIONS:
        if src.size == 0:
            raise InvalidFile(f"the file named {extension.upper()} is empty (0 bytes)")
        raise InvalidFile(
            f"the file is named {extension.upper()} but its content is not a JPEG or any"
            f" known photo format (it starts with {head[:4].hex(' ').upper()})"
        )
    return Inspection("other", False, _NO_METADATA)


class Source:
    """Bounds-checked random access to a file, or to bytes (the EXIF block of a JPEG)."""

    def __init__(self, size: int, what: str, *, file: BinaryIO | None = None, data: bytes = b"") -> None:
        self.size = size
        self.what = what
        self._file = file
        self._data = data

    def read(self, offset: int, length: int, item: str) -> bytes:
        """Exactly `length` bytes at `offset`, or InvalidFile naming `item`."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise InvalidFile(
                f"{item} at byte {offset} needs {length} bytes, but {self.what} is only"
                f" {self.size} bytes long (truncated or corrupt)"
            )
        if self._file is None:
            return self._data[offset : offset + length]
        self._file.seek(offset)
        data = self._file.read(length)
        if len(data) != length:
            raise InvalidFile(f"{self.what} shrank while it was being checked")
        return data

    def rfind(self, needle: bytes, start: int) -> int:
        """Last offset of `needle` at or after `start` (-1 if absent), scanned at C speed."""
        if self._file is None:
            return self._data.rfind(needle, start)
        if self.size == 0:
            return -1
        with mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return view.rfind(needle, start)


# --- JPEG -----------------------------------------------------------------------------


def _inspect_jpeg(src: Source) -> Inspection:
    scan_start, (width, height), metadata = _walk_jpeg(src, 0)
    tail_start = max(scan_start, src.size - _JPEG_TAIL)
    found = src.read(tail_start, src.size - tail_start, "JPEG tail").rfind(b"\xff\xd9") >= 0
    # Rare: more than 64 KiB after the end marker (phone "motion photo" trailers): scan it all.
    if not found and (tail_start == scan_start or src.rfind(b"\xff\xd9", scan_start) < 0):
        raise InvalidFile("JPEG truncated: no end-of-image marker after the scan data")
    metadata = dataclasses.replace(metadata, width=width or None, height=height or None)
    return Inspection("jpeg", True, metadata)


def _walk_jpeg(src: Source, start: int) -> tuple[int, tuple[int, int], Metadata]:
    """Walk the marker segments of the JPEG at `start` up to its first scan.

    Returns where the scan data begins, (width, height) from the frame header and
    the EXIF metadata (best effort: a damaged EXIF block only loses metadata).
    """
    if src.read(start, 2, "JPEG start-of-image marker") != b"\xff\xd8":
        raise InvalidFile(f"JPEG corrupt: no start-of-image marker at byte {start}")
    pos = start + 2
    frame: tuple[int, int] | None = None
    metadata: Metadata | None = None
    for _ in range(_MAX_JPEG_SEGMENTS):
        prefix, code = src.read(pos, 2, "JPEG marker")
        if prefix != 0xFF:
            raise InvalidFile(f"JPEG corrupt: expected a marker at byte {pos}, not 0x{prefix:02X}")
        if code == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if code == 0x01 or 0xD0 <= code <= 0xD7:  # standalone markers (TEM, RSTn)
            pos += 2
            continue
        if code == 0xD9:
            raise InvalidFile(f"JPEG corrupt: end-of-image marker at byte {pos} before the scan")
        if code < 0xC0 or code == 0xD8:
            raise InvalidFile(f"JPEG corrupt: invalid marker FF{code:02X} at byte {pos}")
        (length,) = struct.unpack(">H", src.read(pos + 2, 2, "JPEG segment length"))
        end = pos + 2 + length
        if length < 2 or end > src.size:
            raise InvalidFile(
                f"JPEG truncated: segment FF{code:02X} at byte {pos} is {length + 2} bytes long,"
                f" but the file is only {src.size} bytes long"
            )
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC) and frame is None:
            if length < 8:
                raise InvalidFile(f"JPEG corrupt: frame header at byte {pos} is too short")
            height, width = struct.unpack(">HH", src.read(pos + 5, 4, "JPEG frame header"))
            frame = (width, height)
        elif code == 0xE1 and metadata is None and length >= 16:
            body = src.read(pos + 4, length - 2, "JPEG APP1 segment")
            if body.startswith(b"Exif\0\0"):
                metadata = _exif_metadata(body[6:])
        elif code == 0xDA:
            if frame is None:
                raise InvalidFile(f"JPEG corrupt: scan data at byte {pos} before any frame header")
            return end, frame, metadata or _NO_METADATA
        pos = end
    raise InvalidFile(f"JPEG corrupt: over {_MAX_JPEG_SEGMENTS} marker segments before the scan")


def _exif_metadata(tiff: bytes) -> Metadata:
    """Metadata from an EXIF block (a TIFF structure in memory); what is readable of it."""
    if tiff[:4] not in (b"II*\0", b"MM\0*"):
        return _NO_METADATA
    reader = Tiff(Source(len(tiff), "the EXIF block", data=tiff), strict=False)
    with contextlib.suppress(InvalidFile):  # damaged EXIF: keep the tags read before the damage
        reader.walk()
    return reader.metadata()


# --- TIFF and TIFF-based RAW ----------------------------------------------------------


def _inspect_tiff(src: Source) -> Inspection:
    reader = Tiff(src, strict=True)
    reader.walk()
    return Inspection("raw", True, reader.metadata())


@dataclass(frozen=True, slots=True)
class Entry:
    tag: int
    type: int
    count: int
    at: int  # where the value bytes are (inside the entry, or out of line)


class Tiff:
    """Walks the IFD tree of a TIFF structure and keeps what metadata needs.

    strict: every out-of-line value, strip, tile and embedded JPEG must lie inside the
    source (a file being checked). Not strict (EXIF inside a JPEG): skip bad values.
    """

    def __init__(self, src: Source, *, strict: bool) -> None:
        header = src.read(0, 8, "TIFF header")
        self._src = src
        self._strict = strict
        self._order = "<" if header[:2] == b"II" else ">"
        self._first_ifd: int = struct.unpack_from(self._order + "I", header, 4)[0]
        self.ifd0: dict[int, Entry] = {}
        self.exif: dict[int, Entry] = {}
        self.largest: tuple[int, int] | None = None
        self.ifds: list[dict[int, Entry]] = []  # every IFD visited (EXIF's too), in walk order
        self._pointers_left = _MAX_TOTAL_DATA_POINTERS
        self._magic = header[:4]
        self._cr2 = header[8:10] == b"CR"

    def walk(self) -> None:
        """Visit IFD0, its chain of next IFDs, SubIFDs and the EXIF IFD (each once)."""
        if self._first_ifd == 0:
            raise InvalidFile("TIFF corrupt: the header points to no image directory")
        queue: list[tuple[int, str]] = [(self._first_ifd, "IFD0")]
        seen: set[int] = set()
        while queue:
            offset, role = queue.pop(0)
            if offset in seen:  # a loop in the chain, or an IFD listed twice: checked already
                continue
            if len(seen) == _MAX_IFDS:
                raise InvalidFile(f"TIFF corrupt: more than {_MAX_IFDS} image directories (IFDs)")
            seen.add(offset)
            entries, next_ifd = self._read_ifd(offset, chained=role in ("IFD0", "IFD"))
            self.ifds.append(entries)
            if role == "IFD0":
                self.ifd0 = entries
            elif role == "EXIF" and not self.exif:
                self.exif = entries
            if self._strict:
                self._check_data(offset, entries)
            width, height = self._first(entries.get(0x0100)), self._first(entries.get(0x0101))
            if (
                width
                and height
                and (self.largest is None or width * height > self.largest[0] * self.largest[1])
            ):
                self.largest = (width, height)
            exif_ifd = self._first(entries.get(0x8769))
            if exif_ifd:
                queue.append((exif_ifd, "EXIF"))
            if 0x014A in entries:
                sub_ifds = self._ints(entries[0x014A], _MAX_IFDS)
                queue.extend((sub_ifd, "SubIFD") for sub_ifd in sub_ifds if sub_ifd)
            if next_ifd:
                queue.append((next_ifd, "IFD"))

    def _read_ifd(self, offset: int, *, chained: bool) -> tuple[dict[int, Entry], int]:
        """The entries of the IFD at `offset` by tag, and its next-IFD pointer (if chained)."""
        (count,) = struct.unpack(self._order + "H", self._src.read(offset, 2, "TIFF IFD"))
        if count > _MAX_IFD_ENTRIES:
            raise InvalidFile(f"TIFF corrupt: the IFD at byte {offset} claims {count} entries")
        block = self._src.read(offset + 2, 12 * count + (4 if chained else 0), "TIFF IFD")
        entries: dict[int, Entry] = {}
        for index in range(count):
            tag, type_, n, pointer = struct.unpack_from(self._order + "HHII", block, 12 * index)
            type_size = _TYPE_SIZES.get(type_)
            if type_size is None or tag in entries:  # unknown type (spec: ignore) or duplicate
                continue
            at = offset + 2 + 12 * index + 8
            if n * type_size > 4:
                at = pointer
                if at + n * type_size > self._src.size:
                    if not self._strict:
                        continue
                    raise InvalidFile(
                        f"TIFF truncated: tag 0x{tag:04X} of the IFD at byte {offset} points to"
                        f" {n * type_size} bytes at byte {at}, but the file is only"
                        f" {self._src.size} bytes long"
                    )
            entries[tag] = Entry(tag, type_, n, at)
        if not chained:
            return entries, 0
        next_ifd: int = struct.unpack_from(self._order + "I", block, 12 * count)[0]
        return entries, next_ifd

    def _check_data(self, offset: int, entries: dict[int, Entry]) -> None:
        """Every strip, tile and embedded JPEG of the IFD must end inside the file."""
        for offsets_tag, lengths_tag, what in _DATA_TAGS:
            if offsets_tag not in entries:
                continue
            starts = self._ints(entries[offsets_tag], _MAX_DATA_POINTERS)
            self._pointers_left -= len(starts)
            if self._pointers_left < 0:
                raise InvalidFile(
                    f"TIFF corrupt: more than {_MAX_TOTAL_DATA_POINTERS} strips or tiles in all"
                )
            lengths_entry = entries.get(lengths_tag)
            lengths = self._ints(lengths_entry, _MAX_DATA_POINTERS) if lengths_entry else []
            for index, start in enumerate(starts):
                end = start + (lengths[index] if index < len(lengths) else 0)
                if end > self._src.size:
                    raise InvalidFile(
                        f"TIFF truncated: {what} {index} of the IFD at byte {offset} ends at byte"
                        f" {end}, but the file is only {self._src.size} bytes long"
                    )

    def is_raw(self) -> bool:
        """Sensor data somewhere in the walked IFDs (or a RAW's own magic): a RAW, not a TIFF."""
        if self._magic not in (b"II*\0", b"MM\0*") or self._cr2 or 0xC612 in self.ifd0:
            return True
        for entries in self.ifds:
            if self._first(entries.get(0x0106)) in RAW_PHOTOMETRIC:
                return True
            if self._first(entries.get(0x0103)) in _RAW_COMPRESSION:
                return True
        return False

    def _ints(self, entry: Entry, limit: int) -> list[int]:
        """All values of an unsigned integer tag (none for other types)."""
        fmt = _UINT_FORMATS.get(entry.type)
        if fmt is None:
            return []
        if entry.count > limit:
            raise InvalidFile(
                f"TIFF corrupt: tag 0x{entry.tag:04X} at byte {entry.at} has {entry.count}"
                f" values (more than {limit})"
            )
        data = self._src.read(entry.at, entry.count * _TYPE_SIZES[entry.type], "TIFF tag value")
        return list(struct.unpack(f"{self._order}{entry.count}{fmt}", data))

    def ints(self, entry: Entry, limit: int) -> list[int]:
        """All values of an unsigned integer tag (InvalidFile past ``limit`` values)."""
        return self._ints(entry, limit)

    def _first(self, entry: Entry | None) -> int | None:
        """The first value of an unsigned integer tag."""
        if entry is None or entry.count == 0 or entry.type not in _UINT_FORMATS:
            return None
        data = self._src.read(entry.at, _TYPE_SIZES[entry.type], "TIFF tag value")
        value: int = struct.unpack(self._order + _UINT_FORMATS[entry.type], data)[0]
        return value

    def first(self, entry: Entry | None) -> int | None:
        """The first value of an unsigned integer tag, or None."""
        return self._first(entry)

    def _text(self, entries: dict[int, Entry], tag: int) -> str | None:
        """An ASCII tag up to its first NUL, stripped; None if absent or blank."""
        entry = entries.get(tag)
        if entry is None or entry.type not in (1, 2, 7):
            return None
        raw = self._src.read(entry.at, min(entry.count, _MAX_TEXT), "TIFF text value")
        return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip() or None

    def metadata(self) -> Metadata:
        ifd0, exif = self.ifd0, self.exif
        capture_time = _iso_time(
            self._text(exif, 0x9003), self._text(exif, 0x9291), self._text(exif, 0x9011)
        ) or _iso_time(self._text(ifd0, 0x0132), self._text(exif, 0x9290), self._text(exif, 0x9010))
        orientation = self._first(ifd0.get(0x0112))
        width, height = self.largest or (None, None)
        return Metadata(
            capture_time=capture_time,
            body_serial=self._text(exif, 0xA431) or self._text(ifd0, 0xC62F),
            make=self._text(ifd0, 0x010F),
            model=self._text(ifd0, 0x0110),
            orientation=orientation if orientation is not None and 1 <= orientation <= 8 else None,
            width=width,
            height=height,
        )


def _iso_time(date: str | None, subsec: str | None, offset: str | None) -> str | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' (+ sub-seconds, + UTC offset) as ISO 8601; None if invalid."""
    match = _EXIF_DATE.match(date or "")
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        datetime.date(year, month, day)  # "0000:00:00 00:00:00": a camera with no clock set
    except ValueError:
        return None
    if hour > 23 or minute > 59 or second > 60:
        return None
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if subsec and subsec.isascii() and subsec.isdigit():
        text += "." + (subsec + "00")[:3]
    if offset and _EXIF_OFFSET.fullmatch(offset):
        text += offset
    return text


# --- ISO-BMFF (CR3, HEIF, MP4/MOV) ----------------------------------------------------


def _inspect_bmff(src: Source) -> Inspection:
    pos = 0
    brands: list[bytes] = []
    box_types: set[bytes] = set()
    moov: tuple[int, int] | None = None
    boxes = 0
    while pos < src.size:
        boxes += 1
        if boxes > _MAX_BOXES:
            raise InvalidFile(f"ISO-BMFF corrupt: more than {_MAX_BOXES} top-level boxes")
        size, box_type = struct.unpack(">I4s", src.read(pos, 8, "ISO-BMFF box header"))
        name = box_type.decode("latin-1").encode("unicode_escape").decode("ascii")
        header_length = 8
        if size == 1:
            (size,) = struct.unpack(">Q", src.read(pos + 8, 8, f"64-bit size of box '{name}'"))
            header_length = 16
        elif size == 0:  # the box runs to the end of the file
            size = src.size - pos
        if size < header_length:
            raise InvalidFile(f"ISO-BMFF corrupt: box '{name}' at byte {pos} has bad size {size}")
        if pos + size > src.size:
            raise InvalidFile(
                f"ISO-BMFF truncated: box '{name}' at byte {pos} is {size} bytes long,"
                f" but the file is only {src.size} bytes long"
            )
        if pos == 0:  # ftyp: major brand, minor version, compatible brands
            if size - header_length < 8:
                raise InvalidFile("ISO-BMFF corrupt: the file-type box is too short")
            body = src.read(header_length, min(size - header_length, 1024), "ftyp box")
            brands = [body[0:4]] + [body[i : i + 4] for i in range(8, len(body) - 3, 4)]
        box_types.add(box_type)
        if box_type == b"moov":
            moov = (pos + header_length, pos + size)
        pos += size
    kind = "video"
    for brand in brands:  # major brand first, then the compatible ones
        if brand == b"crx ":
            kind = "cr3"
            break
        if brand in _HEIF_BRANDS:
            kind = "heif"
            break
    # A cut exactly between two boxes leaves valid sizes: a photo must still have its index.
    if kind == "cr3" and b"moov" not in box_types:
        raise InvalidFile("CR3 truncated: no 'moov' box")
    if kind == "heif" and not box_types & {b"meta", b"moov"}:
        raise InvalidFile("HEIF truncated: no 'meta' box")
    metadata = _NO_METADATA
    if kind == "cr3" and moov is not None:
        with contextlib.suppress(InvalidFile):  # metadata only: the sizes above decide validity
            metadata = cr3_metadata(src, *moov)
    return Inspection(kind, kind in SEARCHABLE_KINDS, metadata)


def bmff_children(src: Source, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The child boxes between ``start`` and ``end``: (type, payload start, box end) each; a
    ``uuid`` box's type is its 16-byte UUID. At most ``_MAX_CHILD_BOXES``."""
    children: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end and len(children) < _MAX_CHILD_BOXES:
        size, box_type = struct.unpack(">I4s", src.read(pos, 8, "ISO-BMFF box header"))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", src.read(pos + 8, 8, "ISO-BMFF box size"))
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise InvalidFile(f"ISO-BMFF corrupt: box at byte {pos} overruns its parent")
        if box_type == b"uuid":
            if size < header + 16:
                raise InvalidFile(f"ISO-BMFF corrupt: uuid box at byte {pos} is too short")
            box_type = src.read(pos + header, 16, "ISO-BMFF uuid")
            header += 16
        children.append((box_type, pos + header, pos + size))
        pos += size
    return children


def cr3_metadata(src: Source, start: int, end: int) -> Metadata:
    """Canon CR3: CMT1 is IFD0 (make, model, orientation), CMT2 the EXIF IFD (capture time,
    serial), both inside moov's Canon uuid box."""
    for box_type, payload, box_end in bmff_children(src, start, end):
        if box_type != CR3_META_UUID:
            continue
        cmt: dict[str, bytes] = {}
        for child, at, child_end in bmff_children(src, payload, box_end):
            if child in (b"CMT1", b"CMT2") and child_end - at <= _MAX_META_BOX:
                cmt[child.decode()] = src.read(at, child_end - at, f"CR3 {child.decode()} box")
        ifd0 = Tiff(Source(len(cmt.get("CMT1", b"")), "CMT1", data=cmt.get("CMT1", b"")), strict=False)
        exif = Tiff(Source(len(cmt.get("CMT2", b"")), "CMT2", data=cmt.get("CMT2", b"")), strict=False)
        for reader, data in ((ifd0, cmt.get("CMT1")), (exif, cmt.get("CMT2"))):
            if data and data[:4] in (b"II*\0", b"MM\0*"):
                with contextlib.suppress(InvalidFile):
                    reader.walk()
        exif.exif = exif.ifd0  # CMT2's first IFD holds the EXIF tags themselves
        exif.ifd0 = {}
        camera = ifd0.metadata()
        taken = exif.metadata()
        return dataclasses.replace(
            camera, capture_time=taken.capture_time, body_serial=taken.body_serial, width=None, height=None
        )
    return _NO_METADATA


# --- PNG and WebP ---------------------------------------------------------------------


def _inspect_png(src: Source) -> Inspection:
    header = src.read(0, 24, "PNG header")
    if header[12:16] != b"IHDR":
        raise InvalidFile("PNG corrupt: the first chunk is not IHDR")
    width, height = struct.unpack_from(">II", header, 16)
    if src.read(src.size - len(_PNG_END), len(_PNG_END), "PNG end chunk") != _PNG_END:
        raise InvalidFile("PNG truncated: the file does not end with an IEND chunk")
    return Inspection("png", True, dataclasses.replace(_NO_METADATA, width=width, height=height))


def _inspect_webp(src: Source) -> Inspection:
    (length,) = struct.unpack("<I", src.read(4, 4, "RIFF size"))
    if length + 8 != src.size:
        raise InvalidFile(
            f"WebP truncated: its RIFF header says {length + 8} bytes, but the file is {src.size} bytes long"
        )
    return Inspection("webp", True, _NO_METADATA)


# --- Fujifilm RAF ---------------------------------------------------------------------


def _inspect_raf(src: Source) -> Inspection:
    header = src.read(0, 108, "RAF header")
    jpeg_at, jpeg_length = struct.unpack_from(">II", header, 84)
    cfa_at, cfa_length = struct.unpack_from(">II", header, 100)
    parts = (("embedded JPEG", jpeg_at, jpeg_length), ("CFA data", cfa_at, cfa_length))
    for what, at, length in parts:
        if at + length > src.size:
            raise InvalidFile(
                f"RAF truncated: the {what} at byte {at} ends at byte {at + length},"
                f" but the file is only {src.size} bytes long"
            )
    metadata = _NO_METADATA
    with contextlib.suppress(InvalidFile):  # metadata only: the checks above decide validity
        metadata = _walk_jpeg(src, jpeg_at)[2]
    # The embedded JPEG is a preview: its pixel size is not the raw image's.
    return Inspection("raw", True, dataclasses.replace(metadata, width=None, height=None))

"""Tests of appliance.ingest.formats: structure checks on real files written here.

Every truncation test states exactly which cut lengths leave a structurally valid file,
so a check that accepts too much or too little fails.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, TiffImagePlugin

from appliance.ingest.formats import SEARCHABLE_KINDS, Inspection, InvalidFile, Metadata, inspect

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
PHOTO_EXTENSIONS = [
    *(".jpg", ".jpeg", ".jpe", ".nef", ".nrw", ".arw", ".sr2", ".srf", ".dng", ".cr2", ".cr3"),
    *(".heic", ".heif", ".hif", ".tif", ".tiff", ".orf", ".rw2", ".pef", ".raf", ".srw", ".png", ".webp"),
]
NO_METADATA = Metadata(None, None, None, None, None, None, None)
INVALID = "invalid"


# --- helpers that build files ---------------------------------------------------------


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif[0x0112] = 6
    exif[0x0132] = "2024:05:17 09:00:00"  # DateTime: must lose to DateTimeOriginal
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:17 14:03:22"
    sub[0x9291] = "45"
    sub[0x9011] = "+02:00"
    sub[0xA431] = "  012345678901 "
    return exif


def jpeg_bytes(
    size: tuple[int, int] = (64, 48),
    *,
    exif: Image.Exif | None = None,
    progressive: bool = False,
    noise: bool = False,
    quality: int = 90,
) -> bytes:
    if noise:
        image = Image.merge("RGB", [Image.effect_noise(size, 60 + 20 * i) for i in range(3)])
    else:
        image = Image.new("RGB", size, (200, 30, 90))
    out = io.BytesIO()
    extra = {"exif": exif} if exif is not None else {}
    image.save(out, "JPEG", progressive=progressive, quality=quality, **extra)
    return out.getvalue()


def tiff_bytes(size: tuple[int, int] = (200, 150)) -> bytes:
    """Uncompressed RGB TIFF with 16 rows per strip, written by Pillow."""
    image = Image.merge("RGB", [Image.effect_noise(size, 40) for _ in range(3)])
    out = io.BytesIO()
    tags = {278: 16, 0x010F: "NIKON CORPORATION", 0x0110: "NIKON D6", 0x0112: 3}
    image.save(out, "TIFF", compression=None, tiffinfo=tags)
    return out.getvalue()


_TIFF_FORMATS = {1: "B", 2: "B", 3: "H", 4: "I", 7: "B"}
TiffValue = bytes | tuple[int | str, ...]
TiffEntry = tuple[int, int, TiffValue]


def build_tiff(
    ifds: Sequence[Sequence[TiffEntry]],
    chunks: Sequence[tuple[str, bytes]],
    *,
    order: str = ">",
    next_of: dict[int, int] | None = None,
) -> tuple[bytes, dict[str, int]]:
    """Lay out a TIFF: header, all IFDs, out-of-line values, then the data `chunks`.

    Tuple values may name offsets: "ifd<N>" (IFD number N) or a chunk's name.
    `next_of` chains IFD i to IFD next_of[i]. Returns the file and where everything is.
    """
    where: dict[str, int] = {}
    pos = 8
    for index, entries in enumerate(ifds):
        where[f"ifd{index}"] = pos
        pos += 2 + 12 * len(entries) + 4
    heap_at = pos
    pos += sum(
        len(value) * struct.calcsize(_TIFF_FORMATS[type_])
        for entries in ifds
        for _, type_, value in entries
        if len(value) * struct.calcsize(_TIFF_FORMATS[type_]) > 4
    )
    for name, data in chunks:
        where[name] = pos
        pos += len(data)
    out = bytearray((b"MM\0*" if order == ">" else b"II*\0") + struct.pack(order + "I", 8))
    heap = bytearray()
    for index, entries in enumerate(ifds):
        out += struct.pack(order + "H", len(entries))
        for tag, type_, value in entries:
            items = value if isinstance(value, bytes) else [where.get(str(v), v) for v in value]
            raw = struct.pack(f"{order}{len(items)}{_TIFF_FORMATS[type_]}", *items)
            if len(raw) > 4:
                out += struct.pack(order + "HHII", tag, type_, len(items), heap_at + len(heap))
                heap += raw
            else:
                out += struct.pack(order + "HHI", tag, type_, len(items)) + raw.ljust(4, b"\0")
        following = (next_of or {}).get(index)
        out += struct.pack(order + "I", 0 if following is None else where[f"ifd{following}"])
    out += heap
    for _, data in chunks:
        out += data
    assert len(out) == pos
    return bytes(out), where


def ascii_value(text: str) -> bytes:
    return text.encode() + b"\0"


# A MakerNote whose own (Nikon-relative) offsets point far outside the file: not parsed.
MAKERNOTE = b"Nikon\0\x02\x10\0\0MM\0*\0\0\0\x08\xff\xff" + b"\xff\xff\xff\xf0" * 16


def nef_like(order: str = ">") -> tuple[bytes, dict[str, int]]:
    """IFD0 (thumbnail strip) -> SubIFDs (JPEG preview, raw strip at the end) + EXIF IFD."""
    preview = jpeg_bytes((32, 24))
    raw = bytes(range(256)) * 24
    ifd0: list[TiffEntry] = [
        (0x00FE, 4, (1,)),
        (0x0100, 4, (160,)),
        (0x0101, 4, (120,)),
        (0x010F, 2, ascii_value("NIKON CORPORATION")),
        (0x0110, 2, ascii_value("NIKON Z 9")),
        (0x0111, 4, ("thumb",)),
        (0x0112, 3, (8,)),
        (0x0117, 4, (57,)),
        (0x0132, 2, ascii_value("2024:05:17 14:03:25")),
        (0x014A, 4, ("ifd1", "ifd2")),
        (0x8769, 4, ("ifd3",)),
    ]
    preview_ifd: list[TiffEntry] = [
        (0x00FE, 4, (1,)),
        (0x0201, 4, ("preview",)),
        (0x0202, 4, (len(preview),)),
    ]
    raw_ifd: list[TiffEntry] = [
        (0x00FE, 4, (0,)),
        (0x0100, 4, (6048,)),
        (0x0101, 4, (4032,)),
        (0x0111, 4, ("raw",)),
        (0x0117, 4, (len(raw),)),
    ]
    exif_ifd: list[TiffEntry] = [
        (0x9003, 2, ascii_value("2024:05:17 14:03:22")),
        (0x9291, 2, ascii_value("07")),
        (0x927C, 7, MAKERNOTE),
        (0xA431, 2, ascii_value("  7001234 ")),
    ]
    chunks = [("thumb", b"\x55" * 57), ("preview", preview), ("raw", raw)]
    return build_tiff([ifd0, preview_ifd, raw_ifd, exif_ifd], chunks, order=order)


def box(box_type: bytes, payload: bytes, mode: str = "32") -> bytes:
    """An ISO-BMFF box; mode "64" uses a 64-bit largesize, "0" means "to the end of file"."""
    if mode == "64":
        return struct.pack(">I4sQ", 1, box_type, 16 + len(payload)) + payload
    if mode == "0":
        return struct.pack(">I4s", 0, box_type) + payload
    return struct.pack(">I4s", 8 + len(payload), box_type) + payload


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return box(b"ftyp", major + struct.pack(">I", 1) + b"".join(compatible))


def cr3_like(mdat_mode: str) -> tuple[bytes, list[int]]:
    """ftyp crx + moov + uuid + mdat; returns the file and the end of each top-level box."""
    boxes = [
        ftyp(b"crx ", b"crx ", b"isom"),
        box(b"moov", box(b"uuid", b"CMT1" * 40) + box(b"trak", b"x" * 300)),
        box(b"uuid", b"PRVW" * 100),
        box(b"mdat", bytes(range(256)) * 40, mdat_mode),
    ]
    ends = [sum(len(b) for b in boxes[: i + 1]) for i in range(len(boxes))]
    return b"".join(boxes), ends


def raf_like() -> bytes:
    """Fujifilm RAF: header, directory at byte 84, embedded JPEG, metadata, CFA data last."""
    exif = Image.Exif()
    exif[0x010F] = "FUJIFILM"
    exif[0x0110] = "X-T5"
    exif.get_ifd(0x8769)[0x9003] = "2023:11:02 18:45:01"
    preview = jpeg_bytes((80, 60), exif=exif)
    meta, cfa = b"\x01" * 300, b"\x02" * 5000
    jpeg_at = 160
    meta_at = jpeg_at + len(preview)
    cfa_at = meta_at + len(meta)
    header = b"FUJIFILMCCD-RAW 0201FF129502" + b"X-T5".ljust(32, b"\0")
    header = header.ljust(84, b"\0")
    header += struct.pack(">6I", jpeg_at, len(preview), meta_at, len(meta), cfa_at, len(cfa))
    return header.ljust(jpeg_at, b"\0") + preview + meta + cfa


def outcome(path: Path, data: bytes, name: str) -> str:
    """The kind inspect() reports for `data`, or INVALID."""
    path.write_bytes(data)
    try:
        return inspect(path, name).kind
    except InvalidFile:
        return INVALID


def cut_lengths(length: int, *extra: int) -> list[int]:
    return sorted({length * i // 40 for i in range(40)} | {length - 1, length - 2, *extra})


def assert_truncations(
    tmp_path: Path, data: bytes, name: str, kind: str, is_valid: Callable[[int], bool], *extra: int
) -> None:
    """Every cut is checked; `is_valid(cut)` says which cuts leave a valid file."""
    path = tmp_path / name
    cuts = cut_lengths(len(data), *extra)
    got = {cut: outcome(path, data[:cut], name) for cut in cuts}
    assert got == {cut: kind if is_valid(cut) else INVALID for cut in cuts}
    assert outcome(path, data, name) == kind


# --- JPEG -------------------------------------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_metadata_from_exif(tmp_path: Path, progressive: bool) -> None:
    path = tmp_path / "IMG_0001.JPG"
    path.write_bytes(jpeg_bytes((64, 48), exif=camera_exif(), progressive=progressive))
    assert inspect(path, path.name) == Inspection(
        kind="jpeg",
        searchable=True,
        metadata=Metadata(
            capture_time="2024-05-17T14:03:22.450+02:00",
            body_serial="012345678901",
            make="Canon",
            model="Canon EOS R5",
            orientation=6,
            width=64,
            height=48,
        ),
    )


def test_jpeg_without_exif_has_only_its_size(tmp_path: Path) -> None:
    path = tmp_path / "plain.jpg"
    path.write_bytes(jpeg_bytes((33, 17)))
    result = inspect(path, path.name)
    assert result.kind == "jpeg"
    assert result.metadata == Metadata(None, None, None, None, None, 33, 17)


@pytest.mark.parametrize(
    ("ifd0", "exif_ifd", "expected"),
    [
        # DateTime (IFD0) is the fallback; its sub-seconds/offset are SubSecTime/OffsetTime.
        (
            {0x0132: "2021:01:02 03:04:05"},
            {0x9290: "7"},
            {"capture_time": "2021-01-02T03:04:05.700"},
        ),
        # A camera whose clock was never set: no capture time at all.
        ({}, {0x9003: "0000:00:00 00:00:00"}, {"capture_time": None}),
        (
            {},
            {0x9003: "2021:01:02 03:04:05", 0x9291: "1234", 0x9011: "bad"},
            {"capture_time": "2021-01-02T03:04:05.123"},
        ),
        # BodySerialNumber is missing: fall back to CameraSerialNumber in IFD0; blanks are None.
        ({0xC62F: " 3031234 ", 0x010F: "   "}, {}, {"body_serial": "3031234", "make": None}),
        ({0x0112: 9}, {}, {"orientation": None}),
    ],
)
def test_exif_fallbacks_and_invalid_values(
    tmp_path: Path,
    ifd0: dict[int, object],
    exif_ifd: dict[int, object],
    expected: dict[str, object],
) -> None:
    exif = Image.Exif()
    for tag, value in ifd0.items():
        exif[tag] = value
    sub = exif.get_ifd(0x8769)
    for tag, value in exif_ifd.items():
        sub[tag] = value
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(exif=exif))
    metadata = inspect(path, path.name).metadata
    assert {field: getattr(metadata, field) for field in expected} == expected


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_every_cut_before_the_end_of_image_is_rejected(tmp_path: Path, progressive: bool) -> None:
    data = jpeg_bytes((160, 120), exif=camera_exif(), progressive=progressive, noise=True)
    scan = data.index(b"\xff\xda")
    # Premise: the only end-of-image marker after the first scan is the last two bytes.
    assert data.find(b"\xff\xd9", scan) == len(data) - 2
    assert_truncations(tmp_path, data, "IMG_0002.JPG", "jpeg", lambda cut: cut == len(data), scan)


def test_jpeg_trailer_after_end_of_image_is_allowed(tmp_path: Path) -> None:
    image = jpeg_bytes((64, 48), exif=camera_exif(), noise=True)
    data = image + b"\0" * 3000 + b"VENDOR TRAILER v1"
    end = len(image)
    assert_truncations(tmp_path, data, "IMG_0003.JPG", "jpeg", lambda cut: cut >= end, end - 1, end, end + 1)


def test_jpeg_with_a_long_trailer_is_accepted_but_truncated_main_image_is_not(tmp_path: Path) -> None:
    """Motion-photo style: an MP4 of >64 KiB after the JPEG's end marker."""
    image = jpeg_bytes((64, 48), exif=camera_exif(), noise=True)
    path = tmp_path / "PXL_0001.JPG"
    path.write_bytes(image + b"ftypmp42" + bytes(200_000))
    assert inspect(path, path.name).kind == "jpeg"
    path.write_bytes(image[:-10] + b"ftypmp42" + bytes(200_000))
    with pytest.raises(InvalidFile, match="no end-of-image marker"):
        inspect(path, path.name)


def test_jpeg_error_messages_name_the_problem(tmp_path: Path) -> None:
    data = jpeg_bytes((64, 48), exif=camera_exif(), noise=True)
    path = tmp_path / "IMG_0004.JPG"
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(InvalidFile) as mid_scan:
        inspect(path, path.name)
    assert mid_scan.value.reason == "JPEG truncated: no end-of-image marker after the scan data"
    app1 = data.index(b"\xff\xe1\x00")  # the EXIF segment, after Pillow's JFIF APP0
    (length,) = struct.unpack_from(">H", data, app1 + 2)
    path.write_bytes(data[: app1 + 40])
    with pytest.raises(InvalidFile) as in_header:
        inspect(path, path.name)
    assert in_header.value.reason == (
        f"JPEG truncated: segment FFE1 at byte {app1} is {length + 2} bytes long,"
        f" but the file is only {app1 + 40} bytes long"
    )


def test_end_of_image_marker_of_an_embedded_thumbnail_does_not_count(tmp_path: Path) -> None:
    thumbnail = jpeg_bytes((8, 8))
    image = jpeg_bytes((64, 48), noise=True)
    segment = b"\xff\xe2" + struct.pack(">H", 2 + len(thumbnail)) + thumbnail
    data = image[:2] + segment + image[2:]  # the thumbnail (and its FF D9) precede the scan
    scan = data.index(b"\xff\xda", len(segment))
    assert data.find(b"\xff\xd9", scan) == len(data) - 2
    assert_truncations(tmp_path, data, "IMG_0005.JPG", "jpeg", lambda cut: cut == len(data), scan)


def test_jpeg_with_only_headers_and_an_end_marker_is_rejected(tmp_path: Path) -> None:
    data = jpeg_bytes()
    scan = data.index(b"\xff\xda")
    path = tmp_path / "x.jpg"
    path.write_bytes(data[:scan] + b"\xff\xd9")  # EOI before any scan
    with pytest.raises(InvalidFile, match="before the scan"):
        inspect(path, path.name)


# --- real photographs -------------------------------------------------------------------


def face_photos() -> list[Path]:
    if not FACES.is_dir():
        pytest.skip(f"real test photos not found: {FACES} is absent")
    return sorted(FACES.glob("*.jpg"))


def test_real_photos_match_pillow() -> None:
    photos = face_photos()
    assert photos
    for photo in photos:
        result = inspect(photo, photo.name)
        with Image.open(photo) as image:
            orientation = image.getexif().get(0x0112)
            assert (result.kind, result.searchable) == ("jpeg", True), photo.name
            assert (result.metadata.width, result.metadata.height) == image.size, photo.name
            assert result.metadata.orientation == orientation, photo.name
    rotated = FACES / "curie-couple-exif-orientation-6.jpg"
    assert inspect(rotated, rotated.name).metadata.orientation == 6
    png = FACES / "collins-astronaut.png"
    with Image.open(png) as image:
        size = image.size
    assert inspect(png, png.name) == Inspection(
        "png", True, dataclasses.replace(NO_METADATA, width=size[0], height=size[1])
    )


def test_real_photo_truncations(tmp_path: Path) -> None:
    face_photos()  # skips when the folder is absent
    data = (FACES / "curie-couple-exif-orientation-6.jpg").read_bytes()
    assert data.endswith(b"\xff\xd9")  # premise: no trailer after the end-of-image marker
    assert_truncations(tmp_path, data, "DSC_0001.JPG", "jpeg", lambda cut: cut == len(data))


# --- TIFF and TIFF-based RAW ------------------------------------------------------------


def test_tiff_multi_strip_truncations(tmp_path: Path) -> None:
    data = tiff_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert isinstance(image, TiffImagePlugin.TiffImageFile)
        starts, counts = image.tag_v2[0x0111], image.tag_v2[0x0117]
    # Premises: many strips, and the last one ends the file.
    assert len(starts) > 5
    assert max(s + c for s, c in zip(starts, counts, strict=True)) == len(data)
    path = tmp_path / "scan.tif"
    path.write_bytes(data)
    assert inspect(path, path.name) == Inspection(
        "raw", True, Metadata(None, None, "NIKON CORPORATION", "NIKON D6", 3, 200, 150)
    )
    assert_truncations(tmp_path, data, "scan.TIF", "raw", lambda cut: cut == len(data), *starts)


@pytest.mark.parametrize("order", [">", "<"])
def test_nef_like_metadata_comes_from_ifd0_exif_and_largest_subifd(tmp_path: Path, order: str) -> None:
    data, _ = nef_like(order)
    path = tmp_path / "DSC_0001.NEF"
    path.write_bytes(data)
    assert inspect(path, path.name) == Inspection(
        kind="raw",
        searchable=True,
        metadata=Metadata(
            capture_time="2024-05-17T14:03:22.070",
            body_serial="7001234",
            make="NIKON CORPORATION",
            model="NIKON Z 9",
            orientation=8,
            width=6048,
            height=4032,
        ),
    )


def test_nef_like_truncations(tmp_path: Path) -> None:
    data, where = nef_like()
    assert_truncations(tmp_path, data, "DSC_0002.NEF", "raw", lambda cut: cut == len(data), *where.values())
    path = tmp_path / "DSC_0003.NEF"
    path.write_bytes(data[:-1])
    with pytest.raises(InvalidFile) as error:
        inspect(path, path.name)
    assert error.value.reason == (
        f"TIFF truncated: strip 0 of the IFD at byte {where['ifd2']} ends at byte {len(data)},"
        f" but the file is only {len(data) - 1} bytes long"
    )


@pytest.mark.parametrize(("magic", "name"), [(b"IIRO", "P1.ORF"), (b"IIU\0", "P1.RW2")])
def test_olympus_and_panasonic_magics_are_tiff(tmp_path: Path, magic: bytes, name: str) -> None:
    data, _ = nef_like("<")
    path = tmp_path / name
    path.write_bytes(magic + data[4:])
    assert inspect(path, name).kind == "raw"
    path.write_bytes(magic + data[4:-10])
    with pytest.raises(InvalidFile, match="strip 0"):
        inspect(path, name)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("next_of", [{0: 0}, {0: 1, 1: 0}])
def test_ifd_cycles_end_the_walk(tmp_path: Path, next_of: dict[int, int]) -> None:
    ifd = [(0x0100, 3, (10,)), (0x0101, 3, (20,))]
    data, _ = build_tiff([ifd, ifd], [], next_of=next_of)
    path = tmp_path / "loop.tif"
    path.write_bytes(data)
    assert inspect(path, path.name).metadata.width == 10


def test_tiff_structural_limits(tmp_path: Path) -> None:
    path = tmp_path / "bad.dng"
    chain, _ = build_tiff([[(0x00FE, 4, (0,))]] * 65, [], next_of={i: i + 1 for i in range(64)})
    path.write_bytes(chain)
    with pytest.raises(InvalidFile, match="more than 64 image directories"):
        inspect(path, path.name)
    data, _ = nef_like()
    path.write_bytes(data[:8] + struct.pack(">H", 5000) + data[10:])
    with pytest.raises(InvalidFile, match="IFD at byte 8 claims 5000 entries"):
        inspect(path, path.name)
    path.write_bytes(data[:4] + struct.pack(">I", len(data)) + data[8:])
    with pytest.raises(InvalidFile, match="TIFF IFD at byte"):
        inspect(path, path.name)
    tagged, _ = build_tiff([[(0x010F, 2, b"x" * 40)]], [])
    path.write_bytes(tagged[:-1])  # the out-of-line Make value loses its last byte
    with pytest.raises(InvalidFile, match="tag 0x010F of the IFD at byte 8 points to 40 bytes"):
        inspect(path, path.name)


# --- ISO-BMFF ---------------------------------------------------------------------------


@pytest.mark.parametrize("mdat_mode", ["32", "64", "0"])
def test_cr3_truncations(tmp_path: Path, mdat_mode: str) -> None:
    data, ends = cr3_like(mdat_mode)
    moov_end, mdat_start = ends[1], ends[2]
    assert ends[-1] == len(data)

    def is_valid(cut: int) -> bool:
        # A cut exactly between boxes leaves consistent sizes; the 'moov' index must be there.
        if cut in ends and cut >= moov_end:
            return True
        # A size-0 box runs to the end of the file, whatever that is.
        return mdat_mode == "0" and cut >= mdat_start + 8

    assert_truncations(tmp_path, data, "IMG_0001.CR3", "cr3", is_valid, *ends, mdat_start + 8)


@pytest.mark.parametrize(
    ("brands", "kind"),
    [
        ((b"heic", b"mif1", b"heic"), "heif"),
        ((b"mif1", b"heix"), "heif"),
        ((b"avif", b"avif"), "heif"),
        ((b"crx ", b"crx ", b"isom"), "cr3"),
        ((b"isom", b"isom", b"avc1", b"mp41"), "video"),
        ((b"qt  ", b"qt  "), "video"),
        ((b"XAVC", b"XAVC", b"mp42", b"iso2"), "video"),
    ],
)
def test_bmff_kind_from_brands(tmp_path: Path, brands: tuple[bytes, ...], kind: str) -> None:
    index = b"meta" if kind == "heif" else b"moov"
    data = ftyp(*brands) + box(index, b"i" * 50) + box(b"mdat", b"d" * 500)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    assert inspect(path, "whatever.bin") == Inspection(kind, kind != "video", NO_METADATA)
    path.write_bytes(data + b"\0\0\0")  # a few stray bytes: sizes no longer add up
    with pytest.raises(InvalidFile, match="box header at byte"):
        inspect(path, "clip.mp4")


def test_bmff_impossible_box_sizes(tmp_path: Path) -> None:
    path = tmp_path / "a.heic"
    head = ftyp(b"heic", b"mif1") + box(b"meta", b"m" * 20)
    path.write_bytes(head + struct.pack(">I4s", 4, b"mdat") + b"x" * 20)
    with pytest.raises(InvalidFile, match=r"box 'mdat' at byte \d+ has bad size 4"):
        inspect(path, path.name)
    path.write_bytes(head + struct.pack(">I4sQ", 1, b"mdat", 15) + b"x" * 20)
    with pytest.raises(InvalidFile, match="bad size 15"):
        inspect(path, path.name)
    path.write_bytes(struct.pack(">I4s", 12, b"ftyp") + b"heic")
    with pytest.raises(InvalidFile, match="file-type box is too short"):
        inspect(path, path.name)


@pytest.mark.timeout(20)
def test_multi_gigabyte_sparse_video_is_checked_from_its_headers(tmp_path: Path) -> None:
    size = 64 << 30  # 64 GiB, sparse: reading it would take minutes
    path = tmp_path / "C0001.MP4"
    with path.open("wb") as file:
        file.write(ftyp(b"mp42", b"isom") + box(b"moov", b"v" * 100))
        file.write(struct.pack(">I4sQ", 1, b"mdat", size - file.tell()))
        file.truncate(size)
    # pytest-timeout turns a whole-file read (minutes) into a failure; no clock asserted here
    assert inspect(path, path.name) == Inspection("video", False, NO_METADATA)
    with path.open("r+b") as file:
        file.truncate(size - 1)
    with pytest.raises(InvalidFile, match="ISO-BMFF truncated: box 'mdat'"):
        inspect(path, path.name)
    path.unlink()


# --- Fujifilm RAF -----------------------------------------------------------------------


def test_raf_metadata_and_truncations(tmp_path: Path) -> None:
    data = raf_like()
    path = tmp_path / "DSCF0001.RAF"
    path.write_bytes(data)
    assert inspect(path, path.name) == Inspection(
        "raw", True, Metadata("2023-11-02T18:45:01", None, "FUJIFILM", "X-T5", None, None, None)
    )
    assert_truncations(tmp_path, data, path.name, "raw", lambda cut: cut == len(data), 108, 160)


def test_raf_with_a_preview_past_the_end_is_rejected(tmp_path: Path) -> None:
    data = raf_like()
    path = tmp_path / "DSCF0002.RAF"
    path.write_bytes(data[:88] + struct.pack(">I", len(data)) + data[92:])
    with pytest.raises(InvalidFile, match="RAF truncated: the embedded JPEG at byte 160"):
        inspect(path, path.name)


# --- names, other files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("DSC_0001.NEF", b"\x13\x37garbage" * 100, "named .NEF but its content is not a JPEG"),
        ("IMG_0001.JPG", b"", "named .JPG is empty"),
        ("DSC00001.ARW", b"\0" * 4096, "named .ARW but its content is not a JPEG"),
        ("a.hif", b"<html>not a photo</html>", "named .HIF but"),
    ],
)
def test_photo_names_with_wrong_content_are_rejected(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / "upload.part"
    path.write_bytes(content)
    with pytest.raises(InvalidFile) as error:
        inspect(path, name)
    assert reason in error.value.reason


def test_content_decides_not_the_name(tmp_path: Path) -> None:
    path = tmp_path / "upload.part"
    path.write_bytes(jpeg_bytes((20, 10)))
    assert inspect(path, "DSC_0001.NEF").kind == "jpeg"
    data, _ = nef_like()
    path.write_bytes(data)
    assert inspect(path, "notes.txt").kind == "raw"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("DSC_0001.XMP", b'<?xpacket begin=""?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>'),
        ("memo.WAV", b"RIFF\x24\0\0\0WAVEfmt "),
        ("empty.xmp", b""),
        ("C0001.MOV", b"\0\0\0\x08wide\0\0\x10\0mdat"),  # QuickTime without ftyp: not checked
        ("DSC_0001.NEV", b"\0" * 64),
        ("no-extension", b"\xff\xd7 almost a JPEG"),
    ],
)
def test_other_files_are_accepted_unchecked(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / "upload.part"
    path.write_bytes(content)
    assert inspect(path, name) == Inspection("other", False, NO_METADATA)


# --- hostile input ----------------------------------------------------------------------


@functools.cache
def seed_files() -> tuple[bytes, ...]:
    return (
        jpeg_bytes((16, 16), exif=camera_exif()),
        jpeg_bytes((16, 16), exif=camera_exif(), progressive=True),
        tiff_bytes((24, 40)),
        nef_like(">")[0],
        nef_like("<")[0],
        cr3_like("32")[0],
        cr3_like("64")[0],
        raf_like(),
    )


_INTERESTING_U32 = [0, 1, 2, 7, 8, 16, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]


@st.composite
def mutated_file(draw: st.DrawFn) -> bytes:
    seeds = seed_files()
    data = bytearray(seeds[draw(st.integers(0, len(seeds) - 1))])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["byte", "u32", "cut", "delete", "insert"]))
        if action == "byte" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "u32":
            value = draw(st.sampled_from([*_INTERESTING_U32, len(data), len(data) - at]))
            data[at : at + 4] = struct.pack(draw(st.sampled_from([">I", "<I"])), value & 0xFFFFFFFF)
        elif action == "cut":
            del data[at:]
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@pytest.mark.timeout(300)
@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    content=st.one_of(st.binary(max_size=2048), mutated_file()),
    extension=st.sampled_from([*PHOTO_EXTENSIONS, ".xmp", ".mov", ".mp4", ".wav", ""]),
    upper=st.booleans(),
)
def test_hostile_input_gives_an_inspection_or_invalid_file(
    tmp_path_factory: pytest.TempPathFactory, content: bytes, extension: str, upper: bool
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz.part"
    path.write_bytes(content)
    name = "FILE0001" + (extension.upper() if upper else extension)
    result: Inspection | InvalidFile
    try:
        result = inspect(path, name)
    except InvalidFile as error:
        result = error
    if isinstance(result, InvalidFile):
        assert result.reason
        assert "\n" not in result.reason
        return
    assert result.kind in {*SEARCHABLE_KINDS, "video", "other"}
    assert result.searchable == (result.kind in SEARCHABLE_KINDS)
    orientation = result.metadata.orientation
    assert orientation is None or 1 <= orientation <= 8
    if result.kind == "other":
        assert extension not in PHOTO_EXTENSIONS


# --- PNG, WebP and CR3 metadata (every format searchable) ---------------------------------


def test_png_and_webp_are_searchable_photos_checked_to_their_end(tmp_path: Path) -> None:
    picture = Image.new("RGB", (30, 20), (10, 200, 30))
    for fmt, kind in (("PNG", "png"), ("WEBP", "webp")):
        out = io.BytesIO()
        picture.save(out, fmt)
        data = out.getvalue()
        path = tmp_path / f"export.{kind}"
        path.write_bytes(data)
        result = inspect(path, path.name)
        assert (result.kind, result.searchable) == (kind, True)
        path.write_bytes(data[:-5])
        with pytest.raises(InvalidFile, match="truncated"):
            inspect(path, path.name)


def test_cr3_metadata_comes_from_its_cmt_boxes(tmp_path: Path) -> None:
    from tests import camerafiles

    preview = jpeg_bytes((48, 32))
    path = tmp_path / "IMG_0001.CR3"
    path.write_bytes(camerafiles.cr3(preview, jpeg_bytes((16, 12)), orientation=6, serial="0820210042"))
    assert inspect(path, path.name) == Inspection(
        "cr3", True, Metadata("2026-12-06T15:04:05", "0820210042", "Canon", "Canon EOS R6m2", 6, None, None)
    )

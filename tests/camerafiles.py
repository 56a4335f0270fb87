"""Camera files built with the structure real bodies write, around a given preview JPEG.

No package on PyPI ships small sample RAWs (rawpy's and exifread's sources carry none), so the
format tests build them: each has what the body writes where the body writes it (the preview, the
small thumbnails beside it, the sensor-data IFD or box, the make, model, serial, capture time and
orientation tags), with a stand-in for the sensor data, which the box never decodes.

- NEF (Nikon Z): IFD0 a 160x120 uncompressed RGB thumbnail (what Pillow shows when it opens a
  NEF as a TIFF), SubIFD 0 the full-size preview JPEG (0x0201/0x0202), SubIFD 1 the CFA data
  (compression 34713), EXIF IFD with the capture time and serial.
- ARW (Sony): IFD0 the preview (0x0201/0x0202, 1616 px on the body), IFD1 a 160x120 JPEG
  thumbnail, SubIFD the CFA data (compression 32767).
- DNG (Adobe converter, bodies that write DNG): IFD0 a 256 px RGB thumbnail with DNGVersion,
  SubIFD 0 the sensor data as lossless JPEG (compression 7, SOF3, CFA), SubIFD 1 the preview as
  a strip JPEG (compression 7, YCbCr).
- CR3 (Canon): ISO-BMFF, brand 'crx ', moov with Canon's uuid box (CMT1 = IFD0, CMT2 = EXIF,
  THMB = 160x120 JPEG), the top-level preview uuid box with PRVW (1620 px on the body), mdat.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image

CAPTURE = "2026:12:06 15:04:05"


def jpeg_of(path: Path, long_edge: int | None = None, *, quality: int = 90, turned: int = 0) -> bytes:
    """A baseline JPEG (no EXIF) of the picture at ``path``, its long edge at most ``long_edge``,
    rotated ``turned`` degrees counter-clockwise (a sensor-oriented preview of a portrait frame)."""
    with Image.open(path) as image:
        picture = image.convert("RGB")
    if long_edge:
        picture.thumbnail((long_edge, long_edge))
    if turned:
        picture = picture.rotate(turned, expand=True)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


def jpeg_of_image(picture: Image.Image, long_edge: int) -> bytes:
    """A small baseline JPEG of ``picture`` (a body's 160x120 thumbnail)."""
    small = picture.convert("RGB")
    small.thumbnail((long_edge, long_edge))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=85)
    return out.getvalue()


def exif_jpeg(path: Path, *, make: str, model: str, serial: str, capture: str = CAPTURE) -> bytes:
    """The body's own JPEG of a RAW+JPEG pair: full EXIF (make, model, serial, capture time)."""
    with Image.open(path) as image:
        picture = image.convert("RGB")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(0x8769).update({0x9003: capture, 0x9291: "25", 0xA431: serial})
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def lossless_jpeg_stub(width: int, height: int) -> bytes:
    """The head of a lossless JPEG (SOF3), as sensor data in CR2 and DNG: never a preview."""
    sof3 = b"\xff\xc3" + struct.pack(">HBHHB", 11, 16, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + sof3 + sos + bytes(2048) + b"\xff\xd9"


class TiffBuilder:
    """A little-endian TIFF laid out front to back: data blobs, then each IFD after its
    children (so every offset is known when it is written), then IFD0's offset in the header."""

    def __init__(self, magic: bytes = b"II*\0") -> None:
        self.buf = bytearray(magic + b"\0\0\0\0")

    def blob(self, data: bytes) -> int:
        if len(self.buf) % 2:
            self.buf += b"\0"
        offset = len(self.buf)
        self.buf += data
        return offset

    def ifd(self, entries: dict[int, tuple[int, int | list[int] | str | bytes]], next_ifd: int = 0) -> int:
        packed: list[tuple[int, int, int, bytes]] = []
        for tag in sorted(entries):
            type_, value = entries[tag]
            if isinstance(value, str):
                raw, count = value.encode() + b"\0", len(value) + 1
            elif isinstance(value, bytes):
                raw, count = value, len(value)
            else:
                values = value if isinstance(value, list) else [value]
                raw = struct.pack(f"<{len(values)}{'H' if type_ == 3 else 'I'}", *values)
                count = len(values)
            packed.append((tag, type_, count, raw))
        out_of_line = {tag: self.blob(raw) for tag, _t, _c, raw in packed if len(raw) > 4}
        if len(self.buf) % 2:
            self.buf += b"\0"
        offset = len(self.buf)
        self.buf += struct.pack("<H", len(packed))
        for tag, type_, count, raw in packed:
            value = struct.pack("<I", out_of_line[tag]) if tag in out_of_line else raw.ljust(4, b"\0")
            self.buf += struct.pack("<HHI", tag, type_, count) + value
        self.buf += struct.pack("<I", next_ifd)
        return offset

    def finish(self, ifd0: int) -> bytes:
        self.buf[4:8] = struct.pack("<I", ifd0)
        return bytes(self.buf)


def _rgb(width: int, height: int) -> bytes:
    return bytes((x * 7 + y * 3) % 256 for y in range(height) for x in range(width) for _ in range(3))


def _exif(tiff: TiffBuilder, serial: str, capture: str) -> int:
    return tiff.ifd({0x9003: (2, capture), 0x9291: (2, "25"), 0xA431: (2, serial)})


def nef(
    preview: bytes | None, *, orientation: int = 1, serial: str = "6012345", capture: str = CAPTURE
) -> bytes:
    """A NEF; ``preview=None``: one whose preview SubIFD is gone (a file some tool stripped)."""
    tiff = TiffBuilder()
    cfa = tiff.blob(bytes(4096))
    thumb = tiff.blob(_rgb(160, 120))
    sub_ifds = []
    if preview is not None:
        jpeg = tiff.blob(preview)
        sub_ifds.append(
            tiff.ifd({0x00FE: (4, 1), 0x0103: (3, 6), 0x0201: (4, jpeg), 0x0202: (4, len(preview))})
        )
    sub_raw = tiff.ifd(
        {
            **{0x00FE: (4, 0), 0x0100: (4, 64), 0x0101: (4, 32), 0x0102: (3, 16), 0x0103: (3, 34713)},
            **{0x0106: (3, 32803), 0x0111: (4, cfa), 0x0115: (3, 1), 0x0117: (4, 4096)},
        }
    )
    exif = _exif(tiff, serial, capture)
    ifd0 = tiff.ifd(
        {
            **{0x00FE: (4, 1), 0x0100: (4, 160), 0x0101: (4, 120), 0x0102: (3, [8, 8, 8])},
            **{0x0103: (3, 1), 0x0106: (3, 2), 0x010F: (2, "NIKON CORPORATION"), 0x0110: (2, "NIKON Z 6_2")},
            **{0x0111: (4, thumb), 0x0112: (3, orientation), 0x0115: (3, 3), 0x0117: (4, 160 * 120 * 3)},
            **{0x014A: (4, [*sub_ifds, sub_raw]), 0x8769: (4, exif)},
        }
    )
    return tiff.finish(ifd0)


def arw(preview: bytes, thumbnail: bytes, *, orientation: int = 1, serial: str = "4123456") -> bytes:
    tiff = TiffBuilder()
    cfa = tiff.blob(bytes(4096))
    jpeg = tiff.blob(preview)
    small = tiff.blob(thumbnail)
    sub_raw = tiff.ifd(
        {
            **{0x00FE: (4, 0), 0x0100: (4, 64), 0x0101: (4, 32), 0x0103: (3, 32767), 0x0106: (3, 32803)},
            **{0x0111: (4, cfa), 0x0117: (4, 4096)},
        }
    )
    exif = _exif(tiff, serial, CAPTURE)
    ifd1 = tiff.ifd({0x0103: (3, 6), 0x0201: (4, small), 0x0202: (4, len(thumbnail))})
    ifd0 = tiff.ifd(
        {
            **{0x00FE: (4, 1), 0x0103: (3, 6), 0x010F: (2, "SONY"), 0x0110: (2, "ILCE-7M4")},
            **{0x0112: (3, orientation), 0x0201: (4, jpeg), 0x0202: (4, len(preview))},
            **{0x014A: (4, [sub_raw]), 0x8769: (4, exif)},
        },
        next_ifd=ifd1,
    )
    return tiff.finish(ifd0)


def dng(preview: bytes, *, orientation: int = 1, serial: str = "DNG0001") -> bytes:
    tiff = TiffBuilder()
    raw = lossless_jpeg_stub(6000, 4000)
    raw_at = tiff.blob(raw)
    jpeg = tiff.blob(preview)
    thumb = tiff.blob(_rgb(256, 171))
    sub_raw = tiff.ifd(
        {
            **{0x00FE: (4, 0), 0x0100: (4, 6000), 0x0101: (4, 4000), 0x0103: (3, 7), 0x0106: (3, 32803)},
            **{0x0111: (4, raw_at), 0x0117: (4, len(raw))},
        }
    )
    with Image.open(io.BytesIO(preview)) as opened:
        width, height = opened.size
    sub_preview = tiff.ifd(
        {
            **{0x00FE: (4, 1), 0x0100: (4, width), 0x0101: (4, height), 0x0103: (3, 7), 0x0106: (3, 6)},
            **{0x0111: (4, jpeg), 0x0117: (4, len(preview))},
        }
    )
    exif = _exif(tiff, serial, CAPTURE)
    ifd0 = tiff.ifd(
        {
            **{0x00FE: (4, 1), 0x0100: (4, 256), 0x0101: (4, 171), 0x0102: (3, [8, 8, 8]), 0x0103: (3, 1)},
            **{0x0106: (3, 2), 0x010F: (2, "Leica Camera AG"), 0x0110: (2, "LEICA Q3")},
            **{0x0111: (4, thumb), 0x0112: (3, orientation), 0x0115: (3, 3), 0x0117: (4, 256 * 171 * 3)},
            **{0x014A: (4, [sub_raw, sub_preview]), 0x8769: (4, exif), 0xC612: (1, bytes([1, 6, 0, 0]))},
        }
    )
    return tiff.finish(ifd0)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _uuid(uuid_hex: str, payload: bytes) -> bytes:
    return _box(b"uuid", bytes.fromhex(uuid_hex) + payload)


def _ifd0_tiff(entries: dict[int, tuple[int, int | list[int] | str | bytes]]) -> bytes:
    tiff = TiffBuilder()
    return tiff.finish(tiff.ifd(entries))


def _track(sample_at: int, sample: bytes) -> bytes:
    """A trak whose one sample is ``sample`` at ``sample_at`` (stsz and co64, as Canon writes)."""
    stsz = _box(b"stsz", struct.pack(">IIII", 0, 0, 1, len(sample)))
    co64 = _box(b"co64", struct.pack(">IIQ", 0, 1, sample_at))
    stbl = _box(b"stbl", _box(b"stsd", bytes(16)) + stsz + co64)
    return _box(b"trak", _box(b"tkhd", bytes(84)) + _box(b"mdia", _box(b"minf", stbl)))


def cr3(
    preview: bytes,
    thumbnail: bytes,
    *,
    orientation: int = 1,
    serial: str = "082021001234",
    capture: str = CAPTURE,
    full: bytes | None = None,
) -> bytes:
    """A CR3; ``full``: the full-size JPEG, track 1's sample (in mdat); without it track 1 holds
    a stand-in that is no JPEG. Track 2 holds the sensor data's stand-in."""
    with Image.open(io.BytesIO(preview)) as opened:
        width, height = opened.size
    cmt1 = _ifd0_tiff({0x010F: (2, "Canon"), 0x0110: (2, "Canon EOS R6m2"), 0x0112: (3, orientation)})
    cmt2 = _ifd0_tiff({0x9003: (2, capture), 0xA431: (2, serial)})
    thmb = _box(b"THMB", struct.pack(">I HH I H H", 0, 160, 120, len(thumbnail), 1, 0) + thumbnail)
    canon = _uuid(
        "85c0b687820f11e08111f4ce462b6a48",
        _box(b"CNCV", b"CanonCR3_001/00.10.00/00.00.00") + _box(b"CMT1", cmt1) + _box(b"CMT2", cmt2) + thmb,
    )
    prvw = _box(b"PRVW", struct.pack(">I HHHH I", 0, 1, width, height, 1, len(preview)) + preview)
    ftyp = _box(b"ftyp", b"crx " + struct.pack(">I", 1) + b"crx isom")
    samples = [full or bytes(64), bytes(4096)]
    preview_box = _uuid("eaf42b5e1c984b88b9fbb7dc406e4d16", bytes(8) + prvw)
    head = canon + _box(b"mvhd", bytes(100))
    moov_size = 8 + len(head) + sum(len(_track(0, sample)) for sample in samples)
    at, tracks = len(ftyp) + moov_size + len(preview_box) + 8, b""
    for sample in samples:
        tracks += _track(at, sample)
        at += len(sample)
    moov = _box(b"moov", head + tracks)
    assert len(moov) == moov_size
    return ftyp + moov + preview_box + _box(b"mdat", b"".join(samples))


def heif(path: Path) -> bytes:
    import pillow_heif

    with Image.open(path) as image:
        picture = image.convert("RGB")
    out = io.BytesIO()
    pillow_heif.from_pillow(picture).save(out, format="HEIF", quality=90)
    return out.getvalue()


def mp4() -> bytes:
    """A short MP4 clip's boxes (ftyp isom, moov, mdat): a video, stored and never indexed."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    return ftyp + _box(b"moov", _box(b"mvhd", bytes(100))) + _box(b"mdat", bytes(2048))


def png(path: Path) -> bytes:
    with Image.open(path) as image:
        picture = image.convert("RGB")
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def rw2(preview: bytes, *, orientation: int = 1) -> bytes:
    """Panasonic RW2: magic 'IIU\\0', the preview JPEG as the value of JpgFromRaw (0x002E)."""
    tiff = TiffBuilder(b"IIU\0")
    raw = tiff.blob(bytes(4096))
    ifd0 = tiff.ifd(
        {
            **{0x0002: (3, 64), 0x0003: (3, 32), 0x000F: (3, 34316), 0x002E: (7, preview)},
            **{0x010F: (2, "Panasonic"), 0x0110: (2, "DC-S5M2"), 0x0112: (3, orientation)},
            **{0x0111: (4, raw), 0x0117: (4, 4096)},
        }
    )
    return tiff.finish(ifd0)


def orf(preview: bytes, *, orientation: int = 1) -> bytes:
    """Olympus ORF: magic 'IIRO', the preview in the makernote's CameraSettings IFD (0x2020,
    PreviewImageStart/Length 0x0101/0x0102), offsets counted from the makernote's start."""
    main_at, settings_at, jpeg_at = 12, 12 + 18, 12 + 18 + 30
    makernote = bytearray(b"OLYMPUS\0II\x03\0")
    makernote += (
        struct.pack("<H", 1) + struct.pack("<HHII", 0x2020, 13, 1, settings_at) + struct.pack("<I", 0)
    )
    makernote += struct.pack("<H", 2)
    makernote += struct.pack("<HHII", 0x0101, 4, 1, jpeg_at) + struct.pack(
        "<HHII", 0x0102, 4, 1, len(preview)
    )
    makernote += struct.pack("<I", 0)
    assert len(makernote) == jpeg_at and main_at == 12
    makernote += preview
    tiff = TiffBuilder(b"IIRO")
    raw = tiff.blob(bytes(4096))
    exif = tiff.ifd({0x9003: (2, CAPTURE), 0x927C: (7, bytes(makernote))})
    ifd0 = tiff.ifd(
        {
            **{0x0100: (4, 64), 0x0101: (4, 32), 0x0103: (3, 1), 0x010F: (2, "OM Digital Solutions")},
            **{0x0110: (2, "OM-1"), 0x0111: (4, raw), 0x0112: (3, orientation), 0x0117: (4, 4096)},
            **{0x8769: (4, exif)},
        }
    )
    return tiff.finish(ifd0)


def raf(preview: bytes) -> bytes:
    """Fujifilm RAF: the header gives the preview JPEG's offset and length (84, 88) and the CFA
    data's (100, 104); the orientation is the preview's own EXIF."""
    cfa = bytes(4096)
    jpeg_at = 160
    header = bytearray(b"FUJIFILMCCD-RAW 0201FF383501X-T5".ljust(60, b"\0"))
    header = header.ljust(84, b"\0")
    header += struct.pack(">IIIIII", jpeg_at, len(preview), 0, 0, jpeg_at + len(preview), len(cfa))
    return bytes(header.ljust(jpeg_at, b"\0")) + preview + cfa

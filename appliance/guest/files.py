"""What the guest pages hand out as files: cached photo responses, ZIPs streamed from disk,
download names safe on any system, and the event's QR code. Pure functions; the routes in
``appliance.guest.app`` call them on the asyncio thread (a ZIP is produced as it is sent)."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import segno
from fastapi import Request
from fastapi.responses import Response
from starlette.responses import FileResponse

if TYPE_CHECKING:
    from appliance.store.records import Photo


def cached_file(request: Request, path: Path, etag: str, media_type: str, **headers: str) -> Response:
    tag = f'"{etag}"'
    cache = {"ETag": tag, "Cache-Control": "private, max-age=86400", **headers}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=cache)
    return FileResponse(path, media_type=media_type, headers=cache)


class _Sink:
    """A write-only file for zipfile that hands back what was written, chunk by chunk."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def zip_stream(files: list[tuple[str, Path]]) -> Iterator[bytes]:
    """A ZIP of ``files`` (stored, not compressed: JPEGs and RAWs do not shrink), produced 1 MB
    at a time from disk; never built in memory."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        for name, path in files:
            try:
                source = path.open("rb")
            except OSError:
                continue
            with source:
                info = zipfile.ZipInfo(name, time.gmtime(path.stat().st_mtime)[:6])
                with archive.open(info, "w", force_zip64=True) as member:
                    while chunk := source.read(1 << 20):
                        member.write(chunk)
                        yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()


_RESERVED = re.compile(r'[<>:"|?*]')  # not in a Windows file name
_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{n}" for d in ("COM", "LPT") for n in range(1, 10)}


def safe_stem(original_name: str) -> str:
    """A camera's file name reduced to a plain base name without its extension, safe to unpack on
    any system: no ``/`` or ``\\`` path parts (``..\\..\\Users\\x.jpg`` is ``x``), no control
    characters, no leading dots (hidden files), nothing Windows refuses; ``photo`` if nothing is left."""
    base = re.split(r"[/\\]", original_name)[-1]
    base = _RESERVED.sub("_", "".join(ch for ch in base if ch.isprintable()))
    base = base.lstrip(". ")
    stem = (base.rsplit(".", 1)[0] if "." in base else base).strip(". ")[:120] or "photo"
    return f"_{stem}" if stem.upper() in _DEVICES else stem


def download_name(photo: Photo, path: Path) -> str:
    """The file name a download of ``path`` (the photo's original or proxy) is offered under."""
    suffix = "".join(ch for ch in path.suffix.lower() if ch.isascii() and (ch.isalnum() or ch == "."))
    return f"{safe_stem(photo.original_name)}{suffix[:10]}"


def zip_entries(photos: list[Photo], originals: bool) -> list[tuple[str, Path]]:
    """ZIP entries: each photo's file under its safe base name, a clash (case-blind, as on
    Windows and macOS) made unique with the photo's id."""
    files: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for photo in photos:
        use_original = originals and photo.evicted_at is None  # else only the proxy is on the box
        path = Path(photo.stored_path) if use_original or not photo.proxy_path else Path(photo.proxy_path)
        name = download_name(photo, path)
        stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
        extra = 0
        while name.casefold() in seen:
            extra += 1
            tail = f"-{photo.id}" + (f"-{extra}" if extra > 1 else "")
            name = f"{stem}{tail}{dot}{suffix}"
        seen.add(name.casefold())
        files.append((name, path))
    return files


def ascii_name(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


def qr_code(url: str, fmt: str) -> tuple[bytes, str]:
    """The event page's QR code as PNG (for the screen) or SVG (for printing)."""
    qr = segno.make(url, error="m")
    out = io.BytesIO()
    if fmt == "svg":
        qr.save(out, kind="svg", scale=8, border=4, xmldecl=True)
        return out.getvalue(), "image/svg+xml"
    qr.save(out, kind="png", scale=10, border=4)
    return out.getvalue(), "image/png"

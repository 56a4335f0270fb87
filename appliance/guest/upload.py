"""Read a selfie from a multipart request into memory, never onto disk.

Starlette's form parser spools file parts over 1 MB to a temporary file; a guest's selfie must
never touch the disk, so the body is read here with a hard size cap and parsed in memory with
python-multipart's streaming parser. Whatever the body or its headers hold, the answer is an
:class:`UploadRejected` (a 4xx with a code the page turns into plain words), never a 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from starlette.requests import Request

MAX_BOUNDARY = 70  # RFC 2046 section 5.1.1; browsers send 30-60 characters


class UploadRejected(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


async def read_file_field(request: Request, field: str, limit: int) -> bytes:
    """The bytes of multipart field ``field``; UploadRejected when the body is over ``limit``,
    is not multipart, or has no such field."""
    return (await read_form(request, field, limit))[0]


async def read_form(request: Request, field: str, limit: int) -> tuple[bytes, dict[str, str]]:
    """The bytes of multipart field ``field`` and the form's other short fields (a tick box's
    value, up to 100 bytes each, as text); UploadRejected as for :func:`read_file_field`."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadRejected("bad_request", "send the picture as multipart/form-data", 400)
    if len(boundary) > MAX_BOUNDARY:  # python-multipart raises on its own limit before parsing
        raise UploadRejected("bad_request", "the multipart boundary is over 70 characters", 400)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise UploadRejected("upload_too_large", "the file is too large", 413)

    parts: dict[str, bytearray] = {}
    current: dict[str, object] = {}
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        current.clear()
        current["headers"] = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers = current["headers"]
        assert isinstance(headers, dict)
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        headers = current["headers"]
        assert isinstance(headers, dict)
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        current["name"] = name
        parts.setdefault(name, bytearray())

    def on_part_data(data: bytes, start: int, end: int) -> None:
        name = current.get("name")
        if isinstance(name, str):
            parts[name].extend(data[start:end])

    received = 0
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
            },
        )
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + 64 * 1024:
                raise UploadRejected("upload_too_large", "the file is too large", 413)
            parser.write(chunk)
        parser.finalize()
    except UploadRejected:
        raise
    except Exception as exc:
        raise UploadRejected("bad_request", f"malformed upload: {exc}", 400) from exc
    data = parts.get(field)
    if not data:
        raise UploadRejected("no_file", "no picture was sent", 400)
    if len(data) > limit:
        raise UploadRejected("upload_too_large", "the file is too large", 413)
    others = {
        name: value.decode("utf-8", "replace")
        for name, value in parts.items()
        if name != field and len(value) <= 100
    }
    return bytes(data), others  # bytes: the selfie process reads it in place (a bytearray is copied there)

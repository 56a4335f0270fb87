"""What the guest routes document in their OpenAPI schema: the bodies they read themselves
(multipart selfies, the PIN form) and every answer they give, so the schema is a true contract.

Every answer of the guest listener carries the headers in ``HEADERS`` (added to each documented
response by appliance.control.web, which sends them).

The guest listener does not serve its schema (nothing on the venue LAN should list the routes);
the admin API does, at ``GET /api/guest/openapi.json``, for whoever builds on the guest API and
for the schemathesis run in tests/test_fuzz_http.py.
"""

from __future__ import annotations

from typing import Any

HTML = {"text/html": {"schema": {"type": "string"}}}
TEXT = {"text/plain": {"schema": {"type": "string"}}}
JPEG = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}
CSS = {"text/css": {"schema": {"type": "string"}}}
ANY_FILE = {  # the original as the camera made it: JPEG, RAW (CR3, NEF, ARW...), HEIF
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}

HEADERS: dict[str, Any] = {
    "Content-Security-Policy": {
        "description": "`default-src 'self'`, `frame-ancestors 'none'`, and the pages' inline "
        "stylesheets and scripts allowed by their SHA-256",
        "required": True,
        "schema": {"type": "string", "pattern": "default-src 'self'.*frame-ancestors 'none'"},
    },
    "X-Content-Type-Options": {"required": True, "schema": {"type": "string", "enum": ["nosniff"]}},
    "Referrer-Policy": {"required": True, "schema": {"type": "string", "enum": ["no-referrer"]}},
    "X-Frame-Options": {"required": True, "schema": {"type": "string", "enum": ["DENY"]}},
    "Cache-Control": {
        "description": "`no-store` (pages, JSON, ZIPs and QR codes hold signed links); photos "
        "`private, max-age=86400` (their links are the same all day)",
        "required": True,
        "schema": {"type": "string"},
    },
}

NOT_FOUND = {
    "description": "No such event, a PIN not entered yet, a forged or foreign link, or too many wrong "
    "guesses from this address: the bare text `Not found`, whichever it was",
    "content": TEXT,
}
BAD_REQUEST = {"description": "A malformed request (the bare text `Bad request`)", "content": TEXT}

ERROR_JSON = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {
            "type": "string",
            "enum": [
                "not_an_image",
                "too_large",
                "upload_too_large",
                "no_face",
                "face_too_small",
                "no_file",
                "bad_request",
                "rate_limited",
                "unavailable",
                "busy",
                "consent",
                "search_off",
                "expired",
                "unknown_code",
            ],
        },
        "message": {"type": "string", "description": "What to tell the guest, in plain words"},
    },
}
MATCH_JSON = {
    "type": "object",
    "required": [
        "photo_id",
        "score",
        "source",
        "taken_at",
        "thumbnail_url",
        "view_url",
        "download_url",
    ],
    "properties": {
        "photo_id": {"type": "integer"},
        "score": {"type": "number"},
        "source": {"type": "string", "enum": ["local", "cloud", "live", "host", "gallery"]},
        "taken_at": {"type": "string", "description": "ISO 8601: capture time, else arrival"},
        "thumbnail_url": {"type": "string"},
        "face_url": {
            "type": ["string", "null"],
            "description": "A square thumbnail centred on the matched face, when the box knows where it is",
        },
        "view_url": {"type": "string"},
        "download_url": {"type": "string"},
    },
}
SEARCH_JSON = {
    "type": "object",
    "required": ["event", "mode", "offline", "faces_in_selfie", "matches", "zip_url"],
    "properties": {
        "event": {"type": "string"},
        "mode": {"type": "string", "enum": ["local", "cloud"]},
        "offline": {"type": "boolean"},
        "faces_in_selfie": {"type": "integer"},
        "matches": {"type": "array", "items": MATCH_JSON},
        "zip_url": {"type": ["string", "null"]},
    },
}

RESULTS_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "What an open results page shows now: the ids in order (a photo the host hid"
        " since is gone), the photos it does not have yet (``have``: the ids it has), whether it is"
        " still looking for new photos, and how many photos the face index has still to do",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["ids", "new", "watching", "backlog"],
                    "properties": {
                        "ids": {"type": "array", "items": {"type": "integer"}},
                        "new": {"type": "array", "items": MATCH_JSON},
                        "watching": {"type": "boolean"},
                        "backlog": {"type": "integer"},
                    },
                }
            }
        },
    },
    404: {
        "description": "The results expired (or the box restarted), or no such event",
        "content": {"application/json": {"schema": ERROR_JSON}},
    },
}

SELFIE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["selfie"],
                    "properties": {
                        "selfie": {
                            "type": "string",
                            "format": "binary",
                            "description": "One picture (JPEG, PNG, WebP, GIF, BMP or TIFF), at most "
                            "guest.max_selfie_mb; kept in memory for the search only",
                        },
                        "consent": {
                            "type": "string",
                            "enum": ["yes"],
                            "description": "The guest ticked the consent box (required by the page's form)",
                        },
                        "watch": {
                            "type": "string",
                            "enum": ["yes"],
                            "description": "Keep looking for new photos of this guest (page form only)",
                        },
                    },
                }
            }
        },
    }
}
PIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["pin"],
                    "properties": {"pin": {"type": "string", "maxLength": 64}},
                }
            }
        },
    }
}


def _search_errors(content: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {
        400: {"description": "No picture, or not sent as multipart/form-data", "content": content},
        403: {"description": "Face search is off for this event", "content": content},
        404: NOT_FOUND,
        413: {"description": "Over guest.max_selfie_mb", "content": content},
        422: {
            "description": "Not a picture the box reads, no usable face in it, or (the page) the"
            " consent box not ticked",
            "content": content,
        },
        429: {"description": "Over guest.searches_per_minute from this address", "content": content},
        503: {
            "description": "The face index is still starting, or the box is busy with other searches"
            " (web.max_searches; try again after Retry-After seconds)",
            "content": content,
        },
    }


SEARCH_API: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The event's photos this face is in, best first",
        "content": {"application/json": {"schema": SEARCH_JSON}},
    },
    **_search_errors({"application/json": {"schema": ERROR_JSON}}),
}
SEARCH_PAGE: dict[int | str, dict[str, Any]] = {
    **_search_errors(HTML),
    303: {"description": "Found: on to the results' own address (/e/<code>/r/<token>)"},
    404: {
        "description": "No such event, or its PIN not entered: the page for an unknown code",
        "content": HTML,
    },
}
HOME: dict[int | str, dict[str, Any]] = {
    200: {"description": "The home page: type the event's code", "content": HTML},
    303: {"description": "The code is an event's: on to its page"},
    404: {"description": "The home page again, saying no event has that code", "content": HTML},
}
PAGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The page (or the PIN form, for an event with a PIN)", "content": HTML},
    308: {"description": "The code typed in capitals: to its own address"},
    404: {"description": "No such event: a page saying so, with the code form", "content": HTML},
    410: {
        "description": "Results expired (or the box restarted): the event's page, saying so",
        "content": HTML,
    },
}
WALL: dict[int | str, dict[str, Any]] = {
    200: {"description": "The wall (or the PIN form, for an event with a PIN)", "content": HTML},
    404: NOT_FOUND,
}
PIN: dict[int | str, dict[str, Any]] = {
    303: {"description": "Right PIN: a cookie for 7 days, on to the event's page"},
    400: BAD_REQUEST,
    403: {"description": "Wrong PIN: the form again", "content": HTML},
    404: {"description": "No such event (or no PIN): the page for an unknown code", "content": HTML},
}


def files(content: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A signed photo or ZIP link; photos support If-None-Match and ranges."""
    return {
        200: {"description": "The file", "content": content},
        206: {"description": "The requested range", "content": content},
        304: {"description": "Not modified (If-None-Match)"},
        404: NOT_FOUND,
        416: {"description": "A range outside the file", "content": TEXT},
    }


ZIP: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The photos as one ZIP, streamed",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    },
    404: NOT_FOUND,
}
HEALTH: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The listener answers (and says nothing more about the box)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["ok"],
                    "properties": {"ok": {"type": "boolean", "enum": [True]}},
                    "additionalProperties": False,
                }
            }
        },
    },
}
QR: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The QR code of the event's page",
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/svg+xml": {"schema": {"type": "string"}},
        },
    },
    404: NOT_FOUND,
}

"""The guest gallery's and the host's half of the store: what guests of an event are shown
(the host's moderation: ``SHOWN_TO_GUESTS``), the host's pages and filters, the host's decisions
on photos, and the event's guest settings (moderation, face search, date, accent, cover).

A mixin of :class:`appliance.store.store.Store` (it reads and writes through the store's
``fetch_all``/``fetch_one``/``transaction``, typed by the ``_Reads`` protocol), so that callers
keep one store object; runs on the asyncio thread like the rest of the store.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from appliance.errors import StoreError
from appliance.store.records import MAX_BATCH, MODERATIONS, PHOTO_COLUMNS, Event, Photo, photo_from, utcnow
from appliance.store.schema import PAIRED_RAW

if TYPE_CHECKING:
    import sqlite3

    import aiosqlite

_ACCENT_RE = re.compile(r"#[0-9a-fA-F]{6}")


class _Reads(Protocol):
    async def fetch_all(self, sql: str, params: Iterable[Any] = ...) -> list[sqlite3.Row]: ...
    async def fetch_one(self, sql: str, params: Iterable[Any] = ...) -> sqlite3.Row | None: ...
    def transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...
    async def get_event(self, code: str) -> Event: ...
    async def event_photos(self, event: str, ids: Iterable[int]) -> list[Photo]: ...
    async def _page(
        self, where: str, params: list[Any], offset: int, limit: int
    ) -> tuple[list[Photo], int]: ...


# Photo.shown_to_guests in SQL, on the ``photos`` table; its one ``?`` is the event's moderation.
SHOWN_TO_GUESTS = (
    "photos.hidden_at IS NULL AND photos.approval IS NOT 'rejected'"
    " AND (? = 'open' OR photos.approval = 'approved')"
)
MODERATE_ACTIONS = {  # the host's actions on photos: the change, and the rows it changes
    "approve": ("approval = 'approved'", "approval IS NOT 'approved'"),
    "reject": ("approval = 'rejected'", "approval IS NOT 'rejected'"),
    "hide": ("hidden_at = ?", "hidden_at IS NULL"),
    "unhide": ("hidden_at = NULL", "hidden_at IS NOT NULL"),
}
_ACCENT_RE = re.compile(r"#[0-9a-fA-F]{6}")


class _Unset:
    """The default of a setting left as it is (None is a value: it clears the setting)."""


UNSET: Any = _Unset()


class GalleryQueries:
    async def set_event_settings(
        self: _Reads,
        code: str,
        *,
        moderation: str = UNSET,
        face_search: bool = UNSET,
        date: str | None = UNSET,
        accent: str | None = UNSET,
        cover_photo_id: int | None = UNSET,
    ) -> Event:
        """Change the settings given (None clears a date, an accent or a cover); refuse a bad value
        in words, changing nothing."""
        await self.get_event(code)
        changes: dict[str, Any] = {}
        if moderation is not UNSET:
            if moderation not in MODERATIONS:
                raise StoreError(f"moderation {moderation!r} is not one of {', '.join(MODERATIONS)}")
            changes["moderation"] = moderation
        if face_search is not UNSET:
            changes["face_search"] = int(bool(face_search))
        if date is not UNSET:
            changes["event_date"] = _iso_date(date)
        if accent is not UNSET:
            if accent is not None and not _ACCENT_RE.fullmatch(accent):
                raise StoreError(f"accent {accent!r} is not a colour written #rrggbb (like #aa3355)")
            changes["accent"] = accent.lower() if accent else None
        if cover_photo_id is not UNSET:
            if cover_photo_id is not None and not await self.event_photos(code, [cover_photo_id]):
                raise StoreError(f"photo {cover_photo_id} is not a photo of event {code}")
            changes["cover_photo_id"] = cover_photo_id
        if changes:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            async with self.transaction() as db:
                await db.execute(
                    f"UPDATE events SET {assignments} WHERE code = ?",  # noqa: S608 - our column names
                    (*changes.values(), code),
                )
        return await self.get_event(code)

    async def guest_photos(self: _Reads, event: Event, ids: Iterable[int]) -> list[Photo]:
        """Those of ``ids`` that are photos of ``event`` shown to its guests, newest first: not
        hidden, not rejected, and approved when the event's moderation says so."""
        return [p for p in await self.event_photos(event.code, ids) if p.shown_to_guests(event.moderation)]

    async def event_page(
        self: _Reads,
        event: str,
        *,
        offset: int,
        limit: int,
        function: str | None = None,
        camera: str | None = None,
    ) -> tuple[list[Photo], int]:
        """One page of an event's photos, newest first, and the event's photo count: a RAW+JPEG
        pair is one photo, its JPEG (``pairs.raw_halves`` gives the RAWs). ``function`` and
        ``camera`` keep only that function's or camera's photos (the count too). Every photo is
        there, whatever the host decided: each carries its ``approval`` and ``hidden_at``."""
        shown = f"event = ? AND NOT {PAIRED_RAW.format(p='photos')}"
        params: list[Any] = [event]
        for column, value in (("function", function), ("camera", camera)):
            if value is not None:
                shown += f" AND {column} = ?"
                params.append(value)
        return await self._page(shown, params, offset, limit)

    async def guest_page(self: _Reads, event: Event, *, offset: int, limit: int) -> tuple[list[Photo], int]:
        """One page of the photos ``event``'s guests are shown (the wall, the gallery), newest
        first, and their count; a RAW+JPEG pair is its JPEG."""
        shown = f"event = ? AND NOT {PAIRED_RAW.format(p='photos')} AND {SHOWN_TO_GUESTS}"
        return await self._page(shown, [event.code, event.moderation], offset, limit)

    async def _page(
        self: _Reads, where: str, params: list[Any], offset: int, limit: int
    ) -> tuple[list[Photo], int]:
        rows = await self.fetch_all(
            f"SELECT {PHOTO_COLUMNS} FROM photos WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
            (*params, limit, offset),
        )
        total = await self.fetch_one(f"SELECT count(*) FROM photos WHERE {where}", params)  # noqa: S608
        return [photo_from(dict(r)) for r in rows], int(total[0]) if total else 0

    async def event_functions_cameras(self: _Reads, event: str) -> tuple[list[str], list[str]]:
        """The functions and the cameras that have photos in ``event`` (the host's filters)."""
        functions = await self.fetch_all(
            "SELECT DISTINCT function FROM photos WHERE event = ? ORDER BY function", (event,)
        )
        cameras = await self.fetch_all(
            "SELECT DISTINCT camera FROM photos WHERE event = ? ORDER BY camera", (event,)
        )
        return [str(r[0]) for r in functions], [str(r[0]) for r in cameras]

    async def awaiting_approval(self: _Reads, event: str) -> int:
        """Photos of ``event`` the host has not decided on nor hidden (a RAW+JPEG pair is one)."""
        row = await self.fetch_one(
            "SELECT count(*) FROM photos WHERE event = ? AND approval IS NULL AND hidden_at IS NULL"  # noqa: S608
            f" AND NOT {PAIRED_RAW.format(p='photos')}",
            (event,),
        )
        return int(row[0]) if row else 0

    async def moderate(self: _Reads, event: str, photo_ids: Iterable[int], action: str) -> int:
        """The host's ``action`` (approve, reject, hide, unhide) on those of ``photo_ids`` that are
        photos of ``event``; the number of photos it changed. Approving clears a rejection and
        rejecting an approval; hiding is a switch of its own, whatever the decision."""
        if action not in MODERATE_ACTIONS:
            raise StoreError(f"{action!r} is not one of {', '.join(MODERATE_ACTIONS)}")
        await self.get_event(event)
        change, needed = MODERATE_ACTIONS[action]
        wanted = list(dict.fromkeys(photo_ids))
        changed = 0
        async with self.transaction() as db:
            for start in range(0, len(wanted), MAX_BATCH):
                chunk = wanted[start : start + MAX_BATCH]
                marks = ",".join("?" * len(chunk))
                cur = await db.execute(
                    f"UPDATE photos SET {change} WHERE event = ? AND id IN ({marks}) AND {needed}",  # noqa: S608
                    ((utcnow(),) if "?" in change else ()) + (event, *chunk),
                )
                changed += cur.rowcount
        return changed


def _iso_date(text: str | None) -> str | None:
    """An event's date as stored (``2026-12-24``), or None; StoreError in words for anything else."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise StoreError(f"date {text!r} is not a day written yyyy-mm-dd (like 2026-12-24)")

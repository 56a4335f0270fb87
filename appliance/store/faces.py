"""The local face index's half of the database: which photos still need their faces found
(newest first), the faces found, and each event's embeddings for search.

Shares the Store's connection and its single-writer ``transaction()``; runs on the asyncio
thread. A photo's faces and its "done" mark are committed together, so a crash mid-photo means
the photo is simply indexed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from appliance.store.records import utcnow
from appliance.store.schema import PAIRED_RAW

if TYPE_CHECKING:
    from appliance.store.store import Store

EMBEDDING_BYTES = 128 * 4  # float32[128]
# Photos the local index has still to do: searchable, not done, not the RAW half of a pair.
_TODO = "faces_state IS NULL AND searchable = 1 AND NOT " + PAIRED_RAW.format(p="photos")


@dataclass(frozen=True, slots=True)
class FaceTodo:
    photo_id: int
    event: str
    sha256: str
    stored_path: str
    proxy_path: str | None
    received_at: str  # for the shutter-to-searchable figure


@dataclass(frozen=True, slots=True)
class FoundFace:
    x: int
    y: int
    w: int
    h: int
    embedding: bytes | None  # float32[128] little-endian; None: too small to search


@dataclass(frozen=True, slots=True)
class EventVectors:
    """Every searchable face of one event: row i of ``vectors`` is face ``face_ids[i]``, a face
    of ``photo_ids[i]``."""

    photo_ids: np.ndarray  # int64[n]
    vectors: np.ndarray  # float32[n, 128]
    last_face_id: int
    face_ids: np.ndarray | None = None  # int64[n]; None: not asked for (tests building galleries)


class FaceStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def todo(self, limit: int, skip: Iterable[int] = ()) -> list[FaceTodo]:
        """Photos whose faces are not yet found, newest first: after a burst, the frame just
        taken becomes searchable before the backlog."""
        skipped = tuple(skip)
        marks = ",".join("?" * len(skipped))
        not_in = f" AND id NOT IN ({marks})" if skipped else ""
        sql = f"SELECT id, event, sha256, stored_path, proxy_path, received_at FROM photos WHERE {_TODO}"  # noqa: S608
        rows = await self.store.fetch_all(f"{sql}{not_in} ORDER BY id DESC LIMIT ?", (*skipped, limit))
        return [FaceTodo(*row) for row in rows]

    async def record(
        self,
        todo: FaceTodo,
        faces: Sequence[FoundFace],
        *,
        proxy: tuple[str, str] | None,
        failed: str | None = None,
    ) -> bool:
        """Commit one photo's faces (and the proxy, when this indexer made it). ``failed``: why
        the photo has no picture to search ("no preview: ..."), kept as ``faces_error``. False:
        the photo was deleted meanwhile (its event purged) and nothing was recorded."""
        async with self.store.transaction() as db:
            async with db.execute("SELECT 1 FROM photos WHERE id = ?", (todo.photo_id,)) as cur:
                if await cur.fetchone() is None:
                    return False
            if proxy is not None:
                await db.execute(
                    "UPDATE photos SET proxy_path = ?, proxy_sha256 = ? WHERE id = ? AND proxy_path IS NULL",
                    (proxy[0], proxy[1], todo.photo_id),
                )
            await db.execute("DELETE FROM faces WHERE photo_id = ?", (todo.photo_id,))
            for face in faces:
                await db.execute(
                    "INSERT INTO faces (photo_id, event, x, y, w, h, embedding) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (todo.photo_id, todo.event, face.x, face.y, face.w, face.h, face.embedding),
                )
            await db.execute(
                "UPDATE photos SET faces_state = ?, searchable_local_at = ?, faces_error = ? WHERE id = ?",
                ("failed" if failed else "done", None if failed else utcnow(), failed, todo.photo_id),
            )
        return True

    async def vectors(self, event: str, after_face_id: int = 0) -> EventVectors:
        """The searchable faces of one event (those after ``after_face_id``, to top up a cache)."""
        rows = await self.store.fetch_all(
            "SELECT id, photo_id, embedding FROM faces"
            " WHERE event = ? AND id > ? AND embedding IS NOT NULL ORDER BY id",
            (event, after_face_id),
        )
        if not rows:
            empty = np.zeros(0, np.int64)
            return EventVectors(empty, np.zeros((0, 128), np.float32), after_face_id, empty)
        ids = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        face_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        blob = b"".join(r[2] for r in rows)
        vectors = np.frombuffer(blob, dtype="<f4").reshape(len(rows), 128)
        return EventVectors(ids, vectors, int(rows[-1][0]), face_ids)

    async def face_box(self, photo_id: int, face_id: int) -> tuple[int, int, int, int] | None:
        """Where face ``face_id`` is in photo ``photo_id``'s proxy (x, y, w, h), if it is one of
        that photo's faces."""
        row = await self.store.fetch_one(
            "SELECT x, y, w, h FROM faces WHERE id = ? AND photo_id = ?", (face_id, photo_id)
        )
        return (int(row[0]), int(row[1]), int(row[2]), int(row[3])) if row else None

    async def backlog(self, event: str) -> int:
        """Photos of the event the local index has still to do."""
        row = await self.store.fetch_one(f"SELECT count(*) FROM photos WHERE event = ? AND {_TODO}", (event,))  # noqa: S608
        return int(row[0]) if row else 0

    async def cloud_photos(self, event: str, face_ids: Iterable[str]) -> dict[str, int]:
        """Which of the event's photos Rekognition face ids belong to (another event's ids map
        to nothing)."""
        wanted = list(face_ids)
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = await self.store.fetch_all(
            f"SELECT c.face_id, c.photo_id FROM cloud_faces c JOIN photos p ON p.id = c.photo_id WHERE p.event = ? AND c.face_id IN ({marks})",  # noqa: S608, E501
            (event, *wanted),
        )
        return {r[0]: int(r[1]) for r in rows}

    async def in_cloud(self, event: str, photo_ids: Iterable[int]) -> set[int]:
        """Those of the photos already searchable in the event's Rekognition collection."""
        wanted = list(photo_ids)
        if not wanted:
            return set()
        marks = ",".join("?" * len(wanted))
        rows = await self.store.fetch_all(
            f"SELECT id FROM photos WHERE event = ? AND searchable_in_cloud_at IS NOT NULL AND id IN ({marks})",  # noqa: S608, E501
            (event, *wanted),
        )
        return {int(r[0]) for r in rows}

    async def counts(self) -> dict[str, int]:
        row = await self.store.fetch_one(
            "SELECT"  # noqa: S608
            f" (SELECT count(*) FROM photos WHERE {_TODO}),"
            " (SELECT count(*) FROM photos WHERE faces_state = 'done'),"
            " (SELECT count(*) FROM photos WHERE faces_state = 'failed'),"
            " (SELECT count(*) FROM faces),"
            " (SELECT count(*) FROM faces WHERE embedding IS NOT NULL)"
        )
        assert row is not None
        keys = ("photos_pending", "photos_indexed", "photos_failed", "faces", "faces_searchable")
        return dict(zip(keys, (int(v) for v in row), strict=True))

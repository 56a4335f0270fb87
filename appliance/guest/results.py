"""A guest's search results, held in memory under an unguessable address: the results page is
``/e/<code>/r/<token>``, so reload, back and a bookmark show it again without running the search
or spending the guest's allowance (Post/Redirect/Get). The address names no photo and carries
nothing biometric; it is bound to its event, and a restart of the box forgets it.

Live results: when the guest ticks "keep looking", the selfie's embedding is kept with the
results, in this process's memory only and for ``guest.live_hours``, and every face the local
index adds to the event is compared with it (:meth:`ResultBook.new_faces`, called on the asyncio
thread by the face service). A match is appended to the results, and the open page picks it up
on its next poll. The number of such watchers is capped per event and in total.

Runs on the asyncio thread; no locks.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from appliance.faces.service import closest_faces

if TYPE_CHECKING:
    from appliance.store.faces import EventVectors

MAX_HELD = 2000  # results kept at most (the oldest go first): ~20 MB at 100 photos each
TOKEN_BYTES = 16


@dataclass(frozen=True, slots=True)
class Hit:
    photo_id: int
    score: float  # 0..1, higher is closer
    source: str  # "cloud", "local" or "live"
    face_id: int | None  # the matched face in the photo's proxy, if the box knows it


@dataclass(slots=True)
class Held:
    token: str
    event: str
    created: float
    hits: list[Hit]  # first the search's, newest photo first, then live ones in order found
    mode: str  # "cloud" or "local"
    offline: bool
    faces_in_selfie: int
    watch_until: float | None = None  # live until then (None: not watching)
    embedding: np.ndarray | None = field(default=None, repr=False)  # in memory only

    def watching(self, now: float | None = None) -> bool:
        return self.watch_until is not None and (now or time.monotonic()) < self.watch_until

    def stop_watching(self) -> None:
        self.watch_until = None
        self.embedding = None


class ResultBook:
    def __init__(
        self,
        *,
        keep_s: float,
        live_s: float,
        threshold: float,
        per_event: int,
        total: int,
        max_held: int = MAX_HELD,
    ) -> None:
        self.keep_s = keep_s
        self.live_s = live_s
        self.threshold = threshold
        self.per_event = per_event
        self.total = total
        self.max_held = max_held
        self._held: OrderedDict[str, Held] = OrderedDict()

    def hold(
        self,
        event: str,
        hits: list[Hit],
        *,
        mode: str,
        offline: bool,
        faces_in_selfie: int,
        embedding: np.ndarray | None,
        watch: bool,
    ) -> Held:
        """Keep a search's results; watch for new photos of the guest if asked and there is room
        (``Held.watching()`` says whether there was)."""
        now = time.monotonic()
        self._expire(now)
        held = Held(secrets.token_urlsafe(TOKEN_BYTES), event, now, hits, mode, offline, faces_in_selfie)
        if watch and embedding is not None and self.live_s > 0 and self._room(event, now):
            held.watch_until = now + self.live_s
            held.embedding = embedding.astype(np.float32, copy=True)
        self._held[held.token] = held
        while len(self._held) > self.max_held:
            self._held.popitem(last=False)
        return held

    def get(self, event: str, token: str) -> Held | None:
        """The results at that address, if it is this event's and not expired."""
        now = time.monotonic()
        self._expire(now)
        held = self._held.get(token)
        if held is None or held.event != event:
            return None
        if held.watch_until is not None and not held.watching(now):
            held.stop_watching()
        return held

    def watchers(self, event: str | None = None) -> int:
        now = time.monotonic()
        return sum(1 for h in self._held.values() if h.watching(now) and (event is None or h.event == event))

    def forget(self, event: str) -> None:
        """Drop every result of an event (it was purged)."""
        for token in [t for t, h in self._held.items() if h.event == event]:
            del self._held[token]

    def new_faces(self, event: str, more: EventVectors) -> None:
        """Faces just indexed in ``event``: add their photos to every live result they match."""
        now = time.monotonic()
        face_ids = more.face_ids if more.face_ids is not None else np.zeros(len(more.photo_ids), np.int64)
        for held in self._held.values():
            if held.event != event or held.embedding is None:
                continue
            if not held.watching(now):
                held.stop_watching()
                continue
            known = {h.photo_id for h in held.hits}
            for photo_id, distance, face_id in closest_faces(
                more.vectors, more.photo_ids, face_ids, held.embedding, self.threshold
            ):
                if photo_id not in known:
                    held.hits.append(Hit(photo_id, round(max(0.0, 1.0 - distance), 4), "live", face_id))

    def _room(self, event: str, now: float) -> bool:
        live = [h for h in self._held.values() if h.watching(now)]
        return len(live) < self.total and sum(1 for h in live if h.event == event) < self.per_event

    def _expire(self, now: float) -> None:
        while self._held:
            token, oldest = next(iter(self._held.items()))
            if now - oldest.created < self.keep_s:
                break
            del self._held[token]

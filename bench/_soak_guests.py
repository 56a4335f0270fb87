"""Pieces of ``bench/soak.py``: guests searching by selfie throughout the soak.

Each guest is a thread with its own ``httpx`` client posting public-domain selfies
(``_soak_corpus.make_selfies``) to ``POST /api/events/<code>/search`` every few seconds, cycling
through the people (one of whom is in no photo) and both events, and recording every answer, or
what happened instead (the box is down between a kill and its restart). Whether the answers were
right is decided after the run, against the cameras' ground truth (``_soak_checks``).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from _soak_corpus import Selfie

SEARCH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Answer:
    at: float  # wall clock
    guest: int  # -1: the final searches after the run
    event: str
    person: str
    status: int  # HTTP status; 0 when there was no answer
    mode: str | None  # "cloud" or "local"
    photo_ids: tuple[int, ...]
    seconds: float
    error: str | None = None


def search(client: httpx.Client, web: str, event: str, selfie: Selfie, guest: int) -> Answer:
    """One guest search; never raises."""
    started = time.monotonic()
    url = f"{web}/api/events/{event}/search"
    try:
        response = client.post(url, files={"selfie": ("selfie.jpg", selfie.data, "image/jpeg")})
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        return Answer(
            time.time(), guest, event, selfie.person, 0, None, (), time.monotonic() - started, error
        )
    seconds = time.monotonic() - started
    if response.status_code != 200:
        error = str(body.get("error") if isinstance(body, dict) else body)
        return Answer(
            time.time(), guest, event, selfie.person, response.status_code, None, (), seconds, error
        )
    ids = tuple(int(m["photo_id"]) for m in body["matches"])
    return Answer(time.time(), guest, event, selfie.person, 200, body.get("mode"), ids, seconds)


class Guest(threading.Thread):
    def __init__(
        self,
        number: int,
        web: str,
        events: Sequence[str],
        selfies: Sequence[Selfie],
        interval: float,
        halt: threading.Event,
    ) -> None:
        super().__init__(name=f"guest-{number}", daemon=True)
        self.number, self.web, self.interval, self.halt = number, web, interval, halt
        self.rng = random.Random(number)
        pairs = [(e, s) for s in selfies for e in events]
        self.rng.shuffle(pairs)
        self.pairs = itertools.cycle(pairs)
        self.answers: list[Answer] = []

    def run(self) -> None:
        with httpx.Client(timeout=SEARCH_TIMEOUT_S) as client:
            while not self.halt.wait(self.interval * self.rng.uniform(0.6, 1.4)):
                event, selfie = next(self.pairs)
                self.answers.append(search(client, self.web, event, selfie, self.number))


def search_everyone(web: str, events: Sequence[str], selfies: Sequence[Selfie]) -> list[Answer]:
    """Every person in every event once (after the run, when everything is synced)."""
    with httpx.Client(timeout=SEARCH_TIMEOUT_S) as client:
        return [search(client, web, event, selfie, -1) for event in events for selfie in selfies]

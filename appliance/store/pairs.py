"""RAW+JPEG pairs of one shutter, as the guest pages need them: which JPEG a matched RAW is
shown as, and which RAWs the host downloads beside a JPEG. The pairing itself is a query
(``schema.PAIRED_RAW``, ``schema.SAME_SHUTTER``), not a stored link: the halves may land in
either order.

Reads through the Store's connection; runs on the asyncio thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from appliance.store.records import MAX_BATCH, PHOTO_COLUMNS, Photo, photo_from
from appliance.store.schema import RAW_KINDS_SQL, SAME_SHUTTER

if TYPE_CHECKING:
    from appliance.store.store import Store


async def raw_halves(store: Store, event: str, jpeg_ids: Iterable[int]) -> dict[int, list[Photo]]:
    """The RAW halves of those of ``jpeg_ids`` that are the JPEG of a RAW+JPEG pair."""
    wanted = list(jpeg_ids)
    found: dict[int, list[Photo]] = {}
    same = SAME_SHUTTER.format(a="j", b="r")
    for start in range(0, len(wanted), MAX_BATCH):
        chunk = wanted[start : start + MAX_BATCH]
        marks = ",".join("?" * len(chunk))
        columns = ", ".join(f"r.{name}" for name in PHOTO_COLUMNS.split(", "))
        rows = await store.fetch_all(
            f"SELECT j.id AS pair_jpeg_id, {columns} FROM photos j JOIN photos r"  # noqa: S608
            f" ON r.kind IN {RAW_KINDS_SQL} AND r.id != j.id AND {same}"
            f" WHERE j.event = ? AND j.kind = 'jpeg' AND j.id IN ({marks}) ORDER BY r.id",
            (event, *chunk),
        )
        for row in rows:
            data = dict(row)
            found.setdefault(int(data.pop("pair_jpeg_id")), []).append(photo_from(data))
    return found


async def shown_for(store: Store, event: str, ids: Iterable[int]) -> dict[int, int]:
    """For each of ``ids`` that is the RAW half of a pair, the JPEG shown instead (a RAW
    indexed before its JPEG landed still finds the one photo of its shutter)."""
    wanted = list(ids)
    found: dict[int, int] = {}
    same = SAME_SHUTTER.format(a="r", b="j")
    for start in range(0, len(wanted), MAX_BATCH):
        chunk = wanted[start : start + MAX_BATCH]
        marks = ",".join("?" * len(chunk))
        rows = await store.fetch_all(
            f"SELECT r.id, min(j.id) FROM photos r JOIN photos j ON j.kind = 'jpeg' AND j.id != r.id AND {same}"  # noqa: S608, E501
            f" WHERE r.event = ? AND r.kind IN {RAW_KINDS_SQL} AND r.id IN ({marks}) GROUP BY r.id",
            (event, *chunk),
        )
        found.update({int(r[0]): int(r[1]) for r in rows})
    return found

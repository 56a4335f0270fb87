"""The durable queue and catalogue: one SQLite database per box (``DATA/shutterbox.db``).

The only package that imports sqlite3/aiosqlite. Runs on the asyncio thread (aiosqlite keeps
its own worker thread per connection); other threads reach it through ``appliance.bridge``.
"""

from appliance.store.records import (
    Event,
    LandedFrame,
    Photo,
    Rejection,
    UploadKey,
)
from appliance.store.store import Store

__all__ = ["Event", "LandedFrame", "Photo", "Rejection", "Store", "UploadKey"]

"""The running box as data: the services the composition root (``appliance.box``) built, handed
to whatever serves or operates on them (the admin API, the guest pages, status and operations).

A frozen record of references, built once the services are entered; nothing here starts,
stops or computes anything. Modules that take it never import ``appliance.box``, so the root
depends on them and never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config import Settings
    from appliance.control.logring import LogRing
    from appliance.control.token import TokenCheck
    from appliance.faces.service import FaceService
    from appliance.ftp import FtpService
    from appliance.guest.access import GuestAccess
    from appliance.health import Health
    from appliance.layout import Layout
    from appliance.store import Store
    from appliance.sync import SyncService


@dataclass
class Ports:
    """The ports the listeners got (a configured 0 means any free one): known once they are up."""

    web: int | None = None
    admin: int | None = None


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    layout: Layout
    store: Store  # the single writer
    reader: Store  # read-only connection of its own: status polls never queue behind ingest
    ftp: FtpService
    sync: SyncService
    faces: FaceService
    guest: GuestAccess
    health: Health
    logs: LogRing
    token: TokenCheck
    started: float  # time.time() at start
    ports: Ports = field(default_factory=Ports)

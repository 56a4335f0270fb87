"""The event-day checklist, each line with its live state where the box can know it: what an
operator ticks off from power-on to the last sync (docs/operator-guide.md starts with the same
list). Computed from the running services on the asyncio thread, through the admin API's
read-only store; nothing here changes anything.

A line is ``done``, ``not yet`` (with what is missing), ``off`` (does not apply: no cloud) or
``by hand`` (the box cannot see it: printed cards, the contract's purge date).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from appliance import metrics
from appliance.guest.address import guest_address, lan_address

if TYPE_CHECKING:
    from appliance.control.status import StatusReport
    from appliance.services import Services

State = Literal["done", "not yet", "off", "by hand"]


@dataclass(frozen=True, slots=True)
class Line:
    part: str  # "before", "during" or "after" the event
    text: str  # the thing to do
    state: State
    detail: str  # what the box sees, or what to do next

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _searches_answered() -> int:
    """Guest searches the box answered with a search (local or cloud) since it started."""
    total = 0.0
    for family in metrics.GUEST_SEARCHES.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("result") in ("local", "cloud"):
                total += sample.value
    return int(total)


async def checklist(services: Services, report: StatusReport) -> list[Line]:
    s = services
    lines: list[Line] = []
    address = lan_address()
    lines.append(
        Line(
            "before",
            "Power and network up",
            "done" if address and not address.startswith("127.") else "not yet",
            f"the box is running; cameras reach it at {address}"
            if address and not address.startswith("127.")
            else "no network address but loopback: plug in the venue network or join its WiFi",
        )
    )
    events = [e for e in await s.reader.list_events() if not e.demo]
    lines.append(
        Line(
            "before",
            "Event and functions created",
            "done" if events else "not yet",
            "; ".join(f"{e.code} {e.name}: {', '.join(e.functions) or 'no functions'}" for e in events)
            or "shutterbox event create NAME --function ceremony --function reception",
        )
    )
    codes = {e.code for e in events}
    cameras = [c for c in await report.cameras() if c["event"] in codes and not c["revoked"]]
    keyless = [e.code for e in events if not any(c["event"] == e.code for c in cameras)]
    lines.append(
        Line(
            "before",
            "One key per camera body",
            "done" if events and not keyless else "not yet",
            f"{len(cameras)} key{'' if len(cameras) == 1 else 's'}"
            + (f"; no key yet for {', '.join(keyless)}" if keyless else "")
            if events
            else "create the event first",
        )
    )
    silent = [c["camera"] for c in cameras if not c["last_frame_at"]]
    lines.append(
        Line(
            "before",
            "A test shot from every body shows in Cameras",
            "done" if cameras and not silent else "not yet",
            ("no frame yet from " + ", ".join(silent))
            if silent
            else f"{len(cameras)} bodies have sent a frame"
            if cameras
            else "no camera key yet",
        )
    )
    lines.append(
        Line(
            "before",
            "Table cards printed",
            "by hand",
            "shutterbox event guest CODE --out card.pdf (or p on the console's Guest QR screen)",
        )
    )
    answered = _searches_answered()
    url = guest_address(s.settings, s.ports.web or s.settings.web.port)
    lines.append(
        Line(
            "before",
            "A phone on the venue WiFi opens the guest page and finds the test shot",
            "done" if answered else "not yet",
            f"{answered} guest searches answered since the box started"
            if answered
            else f"open {url}/e/CODE on a phone on the venue WiFi and take a selfie",
        )
    )
    cloud = s.sync.enabled
    if cloud:
        state = s.sync.uplink.state
        lines.append(
            Line(
                "during",
                "Uplink",
                "done" if state == "online" else "not yet",
                f"uplink {state}"
                + ("" if state == "online" else ": photos wait on the box and go when it is back"),
            )
        )
        status = await report.status()
        queue = status["queue_summary"]
        waiting = queue["pending"] + queue["in_flight"]
        lines.append(
            Line(
                "after",
                "Sync drained (0 pending)",
                "done" if waiting == 0 and not queue["failed"] else "not yet",
                f"{waiting} jobs waiting, {queue['failed']} dead-lettered"
                + (": shutterbox deadletters" if queue["failed"] else ""),
            )
        )
        policies = ", ".join(f"{e.code} {e.originals_policy}" for e in events) or "no event"
        lines.append(
            Line(
                "after",
                "Originals policy honoured",
                "done" if waiting == 0 else "not yet",
                f"originals to S3 by event: {policies}",
            )
        )
    else:
        for part, text in (("during", "Uplink"), ("after", "Sync drained (0 pending)")):
            lines.append(Line(part, text, "off", "cloud sync off: every photo stays on this box"))
        lines.append(
            Line("after", "Originals policy honoured", "off", "cloud sync off: no originals leave the box")
        )
    lines.append(
        Line(
            "after",
            "Purge the event when the contract says so",
            "by hand",
            "shutterbox event purge CODE (deletes its photos, keys and faces from the box)",
        )
    )
    return lines

"""The admin API's event routes: events (the operator's and the backend's), their settings and
moderation, and what guests reach them by (the page, PIN, host link, QR code, table card). Runs on
the asyncio thread."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import segno
from fastapi import APIRouter, HTTPException, Query, Response

from appliance import credentials
from appliance.control.bodies import (
    EVENT_CODE_PATTERN,
    EventEditIn,
    EventIn,
    ModerateIn,
    OriginalsIn,
    PinIn,
    matches,
)
from appliance.guest.access import new_host_key
from appliance.guest.address import guest_address
from appliance.guest.card import MEDIA_TYPES, CardFacts, CardFormat, render_card
from appliance.store.records import slug
from appliance.store.store import function_names

if TYPE_CHECKING:
    from appliance.control.operations import Operations
    from appliance.services import Services


def events_router(services: Services, operations: Operations) -> APIRouter:
    router = APIRouter()

    @router.get("/api/events")
    async def list_events() -> list[dict[str, Any]]:
        """Every event; ``awaiting_approval`` counts the photos its host has still to decide on
        (null for an event whose guests see every photo at once)."""
        store = services.store
        return [
            {
                **e.to_json(),
                "awaiting_approval": await store.awaiting_approval(e.code)
                if e.moderation == "approve"
                else None,
            }
            for e in await store.list_events()
        ]

    @router.post("/api/events", status_code=201)
    async def create_event(body: EventIn) -> dict[str, Any]:
        event = await services.store.create_event(
            body.name, functions=function_names(body.functions), originals_policy=body.originals
        )
        return event.to_json()

    @router.delete("/api/events/{code}")
    async def purge_event(code: str) -> dict[str, Any]:
        return await operations.purge_event(code)

    @router.patch("/api/events/{code}")
    async def edit_event(code: str, body: EventEditIn) -> dict[str, Any]:
        """Change an event's name, moderation (``open``: guests see every photo at once;
        ``approve``: only those its host approved), face search, date, accent or cover photo; or
        declare more functions (``add_functions``)."""
        store = services.store
        added = function_names(body.add_functions or ())  # refused before anything changes
        given = body.model_dump(include=body.model_fields_set - {"name", "add_functions"})
        event = await store.set_event_settings(code, **given)  # refuses a bad value, changing nothing
        if body.name is not None:
            event = await store.rename_event(code, body.name)
        for function in added:
            event = await store.add_function(code, function)
        return event.to_json()

    @router.post("/api/events/{code}/photos/moderate")
    async def moderate_photos(code: str, body: ModerateIn) -> dict[str, Any]:
        """Approve, reject, hide or unhide photos of the event: ``changed`` counts those whose
        state changed, ``not_found`` lists the ids that are not photos of this event."""
        ids = list(dict.fromkeys(body.ids))
        found = {p.id for p in await services.store.event_photos(code, ids)}
        changed = await services.store.moderate(code, ids, body.action)
        return {
            "event": code,
            "action": body.action,
            "changed": changed,
            "unchanged": len(found) - changed,
            "not_found": [i for i in ids if i not in found],
        }

    @router.put("/api/events/{code}/originals")
    async def set_originals(code: str, body: OriginalsIn) -> dict[str, Any]:
        return (await services.store.set_originals_policy(code, body.originals)).to_json()

    @router.put("/api/events/{code}")
    async def push_event(code: str, body: EventIn, response: Response) -> dict[str, Any]:
        """Create the event under the backend's code, or bring its name and functions up to date;
        pushing the same thing twice changes nothing (200 with ``changed: false``)."""
        # machine to machine: the backend is the source of truth and declares functions as it
        # pushes them, unchecked (people declare theirs through POST and PATCH, checked)
        if not matches(EVENT_CODE_PATTERN, code):
            raise HTTPException(
                422, f"event code must be {credentials.EVENT_CODE_LENGTH} of {credentials.ALPHABET}"
            )
        event = await services.store.find_event(code)
        if event is None:
            event = await services.store.create_event(
                body.name, code=code, functions=body.functions, originals_policy=body.originals
            )
            response.status_code = 201
            return {**event.to_json(), "changed": True}
        changed = False
        if event.name != body.name:
            event = await services.store.rename_event(code, body.name)
            changed = True
        for function in body.functions:
            if slug(function) not in event.functions:  # stored as slugs
                event = await services.store.add_function(code, function)
                changed = True
        if event.originals_policy != body.originals:
            event = await services.store.set_originals_policy(code, body.originals)
            changed = True
        return {**event.to_json(), "changed": changed}

    def guest_url(code: str) -> str:
        base = guest_address(services.settings, services.ports.web or services.settings.web.port)
        return f"{base}/e/{code}"

    @router.get("/api/events/{code}/guest")
    async def guest_page(code: str) -> dict[str, Any]:
        event = await services.store.get_event(code)
        return {"event": code, "url": guest_url(code), "pin": event.pin_hash is not None}

    @router.put("/api/events/{code}/pin")
    async def set_pin(code: str, body: PinIn) -> dict[str, Any]:
        digest = None if body.pin is None else await asyncio.to_thread(credentials.hash_secret, body.pin)
        await services.store.set_guest_secret(code, "pin_hash", digest)
        return {"event": code, "pin": digest is not None}

    @router.post("/api/events/{code}/host-link", status_code=201)
    async def new_host_link(code: str) -> dict[str, Any]:
        """A new host link (any earlier one stops working). The key is shown once."""
        key, digest = new_host_key()
        await services.store.set_guest_secret(code, "host_key_hash", digest)
        base = guest_url(code).rsplit("/e/", 1)[0]
        return {"event": code, "url": f"{base}/host/{key}"}

    @router.delete("/api/events/{code}/host-link")
    async def revoke_host_link(code: str) -> dict[str, Any]:
        await services.store.set_guest_secret(code, "host_key_hash", None)
        return {"event": code, "host_link": False}

    @router.get(
        "/api/events/{code}/qr.svg",
        response_class=Response,
        responses={200: {"content": {"image/svg+xml": {}}, "description": "the QR code"}},
    )
    async def guest_qr(code: str) -> Response:
        """The guest page's QR code, to print or show."""
        await services.store.get_event(code)
        svg = segno.make(guest_url(code), error="m").svg_inline(scale=8, border=2)
        return Response(svg, media_type="image/svg+xml")

    @router.get(
        "/api/events/{code}/card",
        response_class=Response,
        responses={
            200: {
                "content": {media: {} for media in MEDIA_TYPES.values()},
                "description": "the table card, A6 portrait",
            }
        },
    )
    async def table_card(
        code: str,
        format: CardFormat = "pdf",
        pin: str | None = Query(None, min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$"),
    ) -> Response:
        """The event's table card (PDF, SVG or PNG): its name and day, the QR code of its guest
        page and the address in words, ``guest.wifi_name``, the PIN when ``pin`` is given (it must
        be the event's: the box keeps only its hash) and three steps."""
        event = await services.store.get_event(code)
        if pin is not None:
            if event.pin_hash is None:
                raise HTTPException(
                    422, f"event {code} has no PIN to print; set one with: shutterbox event pin {code} PIN"
                )
            if not await asyncio.to_thread(credentials.verify_secret, pin, event.pin_hash):
                raise HTTPException(422, f"that is not the PIN of event {code}")
        facts = CardFacts(
            name=event.name,
            url=guest_url(code),
            date=event.date,
            wifi_name=services.settings.guest.wifi_name,
            pin=pin,
            pin_required=event.pin_hash is not None,
            accent=event.accent,
        )
        body = await asyncio.to_thread(render_card, facts, format)
        return Response(
            body,
            media_type=MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="card-{code}.{format}"'},
        )

    return router

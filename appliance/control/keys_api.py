"""The admin API's camera-key routes: the operator's keys and the backend's pushed ones, and
revoking them (their FTP sessions are cut). Runs on the asyncio thread."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Response

from appliance import credentials
from appliance.control.bodies import USERNAME_PATTERN, KeyIn, KeyPush, matches
from appliance.store.records import slug

if TYPE_CHECKING:
    from appliance.control.operations import Operations
    from appliance.services import Services


def keys_router(services: Services, operations: Operations) -> APIRouter:
    router = APIRouter()

    @router.put("/api/keys/{username}")
    async def push_key(username: str, body: KeyPush, response: Response) -> dict[str, Any]:
        """Create or confirm a camera key the backend made. The same push again changes nothing;
        a new secret replaces the old one and cuts the key's live sessions; a revoked key stays
        revoked (409) and a key never moves to another event or camera (409)."""
        if not matches(USERNAME_PATTERN, username):
            raise HTTPException(
                422, "username must be 3-64 of a-z 0-9 . _ - (starting with a letter or digit)"
            )
        digest = body.secret_hash
        key = await services.store.find_key(username)
        if key is None:
            if digest is None:
                assert body.secret is not None
                digest = await asyncio.to_thread(credentials.hash_secret, body.secret)
            key = await services.store.create_key(
                event=body.event,
                function=body.function,
                camera=body.camera,
                secret_hash=digest,
                username=username,
                # machine to machine: the backend is the source of truth and may name a function
                # the box has not heard of yet; it is declared here. People's keys (POST
                # /api/keys) must name a declared one.
                declare_function=True,
            )
            response.status_code = 201
            return {**key.to_json(), "changed": True}
        if key.revoked_at is not None:
            raise HTTPException(409, f"upload key {username} is revoked; push a new username")
        if (key.event, key.function, key.camera) != (body.event, slug(body.function), body.camera):
            raise HTTPException(
                409,
                f"upload key {username} belongs to {key.event}/{key.function}/{key.camera};"
                " push a new username",
            )
        if digest is not None:
            same = digest == key.secret_hash
        else:
            assert body.secret is not None
            same = await asyncio.to_thread(credentials.verify_secret, body.secret, key.secret_hash)
            if not same:
                digest = await asyncio.to_thread(credentials.hash_secret, body.secret)
        if same:
            return {**key.to_json(), "changed": False}
        assert digest is not None
        key = await services.store.set_key_secret(username, digest)
        cut = services.ftp.revoke(username)  # sessions logged in with the old secret
        return {**key.to_json(), "changed": True, "sessions_cut": cut}

    @router.get("/api/keys")
    async def list_keys(event: str | None = None) -> list[dict[str, Any]]:
        return [k.to_json() for k in await services.store.list_keys(event)]

    @router.post("/api/keys", status_code=201)
    async def create_key(body: KeyIn) -> dict[str, Any]:
        key, secret = await operations.create_key(body.event, body.function, body.camera)  # checked
        return {**key.to_json(), "password": secret, "connect": operations.connect_info()}

    @router.delete("/api/keys/{username}")
    async def revoke_key(username: str) -> dict[str, Any]:
        """Revoke and cut live sessions; revoking a revoked key again changes nothing."""
        key = await services.store.revoke_key(username)
        cut = services.ftp.revoke(username)
        return {**key.to_json(), "sessions_cut": cut}

    return router

"""What the operator does to the running box beyond plain records: camera keys (the secret
hashed off the loop), an event's purge (keys, sessions, cloud, rows and files, in that order),
the FTP connection details and the CA certificate cameras trust. Runs on the asyncio thread.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import credentials
from appliance.ftp.server import local_address

if TYPE_CHECKING:
    from appliance.services import Services
    from appliance.store import UploadKey

logger = logging.getLogger(__name__)


class Operations:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def create_key(self, event: str, function: str | None, camera: str) -> tuple[UploadKey, str]:
        """A person's new key and its secret (shown once). ``function`` must be one the event
        declared (None: its only one); a typo is a FunctionError in words, never a new function."""
        s = self.services
        function = await s.store.key_function(event, function)
        secret = credentials.new_secret()
        digest = await asyncio.to_thread(credentials.hash_secret, secret)
        key = await s.store.create_key(event=event, function=function, camera=camera, secret_hash=digest)
        return key, secret

    def connect_info(self) -> dict[str, Any]:
        s = self.services
        ftp = s.settings.ftp
        host = ftp.masquerade_address or (ftp.host if ftp.host not in ("0.0.0.0", "::") else local_address())  # noqa: S104
        ports = s.ftp.ports
        return {
            "host": host,
            "port": ports.get("ftp", ftp.port),
            "implicit_tls_port": ports.get("ftps_implicit"),
            "passive_ports": ftp.passive_ports,
            "tls": "explicit (AUTH TLS) on the same port"
            + (", implicit on its own port" if ftp.implicit_tls_port else ""),
        }

    async def purge_event(self, code: str) -> dict[str, Any]:
        """The right to be forgotten, in one call: keys revoked and sessions cut, the S3 prefix
        and Rekognition collection deleted (first, so a cloud failure leaves everything to retry),
        then every local row and file of the event."""
        s = self.services
        await s.store.get_event(code)
        for key in await s.store.list_keys(code):
            await s.store.revoke_key(key.username)
            s.ftp.revoke(key.username)
        async with s.sync.paused_for(f"purging event {code}"):
            cloud = await s.sync.purge_cloud(code)
            paths = await s.store.purge_event(code)
        s.faces.forget(code)
        removed = await asyncio.to_thread(self._remove_event_files, code, paths)
        logger.warning("purged event %s: %s, %d local files", code, cloud, removed)
        return {"event": code, **cloud, "local_files_removed": removed}

    def _remove_event_files(self, code: str, paths: list[str]) -> int:
        s = self.services
        removed = 0
        for path in paths:
            target = s.layout.ftp / path.removeprefix("jail:") if path.startswith("jail:") else Path(path)
            if target.is_dir():
                removed += sum(1 for p in target.rglob("*") if p.is_file())
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
                removed += 1
        for folder in (s.layout.photos / code, s.layout.proxies / code, s.layout.thumbs / code):
            if folder.exists():
                removed += sum(1 for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder, ignore_errors=True)
        return removed

    def ca_certificate_pem(self) -> str:
        """The root cameras should trust: the box's own CA, or the operator's chain file."""
        s = self.services
        if s.settings.tls.cert_file is not None:
            return s.settings.tls.cert_file.read_text(encoding="ascii")
        return (s.layout.tls / "ca.crt").read_text(encoding="ascii")

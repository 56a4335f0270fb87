"""Upload-key authorizer: works with no network, from the Store's hashed secrets.

Runs on FTP session threads; reaches the Store through the Bridge. A successful check is
remembered as an HMAC of the secret under a per-process random key (never the secret itself),
so a Nikon that reconnects every minute does not pay for scrypt each time. A revoked key fails
at once: the cache is keyed by the stored hash and the revocation is read on every login.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyftpdlib.authorizers import AuthenticationFailed

from appliance import credentials

if TYPE_CHECKING:
    from appliance.bridge import Bridge
    from appliance.store import Store, UploadKey

logger = logging.getLogger(__name__)

PERMISSIONS = "elradfmwT"  # no "M": SITE CHMOD could alter a stored photo's inode


class UnknownUser(AuthenticationFailed):  # type: ignore[misc]
    """No such upload key (scores higher with the Defender than a wrong password)."""


class RevokedKey(AuthenticationFailed):  # type: ignore[misc]
    """The key exists but was revoked (the camera is told only "Authentication failed")."""


@dataclass(frozen=True)
class Login:
    key: UploadKey
    home: Path


class KeyAuthorizer:
    """pyftpdlib authorizer interface (validate_authentication, get_home_dir, has_perm, ...)."""

    def __init__(self, store: Store, bridge: Bridge, jails: Path) -> None:
        self.store = store
        self.bridge = bridge
        self.jails = jails
        self._pepper = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()
        self._logins: dict[str, Login] = {}
        # scrypt costs 32 MiB and ~0.1-0.3 s: a flood of logins must not exhaust a 2 GB board
        self._hashing = threading.BoundedSemaphore(2)

    def lookup(self, username: str) -> UploadKey | None:
        return self.bridge.call(self.store.find_key, username)

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        key = self.lookup(username)
        if key is None:
            raise UnknownUser("Authentication failed.")
        if key.revoked_at is not None:
            raise RevokedKey("Authentication failed.")
        tag = hmac.new(self._pepper, password.encode("utf-8"), hashlib.sha256).digest()
        with self._lock:
            cached = self._verified.get(username)
        if cached is not None and cached[0] == key.secret_hash and hmac.compare_digest(cached[1], tag):
            ok = True
        else:
            with self._hashing:
                ok = credentials.verify_secret(password, key.secret_hash)
            if ok:
                with self._lock:
                    self._verified[username] = (key.secret_hash, tag)
        if not ok:
            raise AuthenticationFailed("Authentication failed.")
        home = self.jails / username
        home.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._logins[username] = Login(key, home)

    def login(self, username: str) -> Login:
        with self._lock:
            return self._logins[username]

    def forget(self, username: str) -> None:
        with self._lock:
            self._verified.pop(username, None)

    # --- the rest of pyftpdlib's authorizer interface

    def get_home_dir(self, username: str) -> str:
        return str(self.jails / username)

    def has_user(self, username: str) -> bool:
        return self.lookup(username) is not None

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        if perm not in PERMISSIONS:
            return False
        if path is None:
            return True
        home = (self.jails / username).resolve()
        try:
            Path(path).resolve().relative_to(home)
        except ValueError:
            return False
        return True

    def get_perms(self, username: str) -> str:
        return PERMISSIONS

    def get_msg_login(self, username: str) -> str:
        return "Welcome to shutterbox."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        return None

    def terminate_impersonation(self, username: str) -> None:
        return None

"""What the admin API reads: its request bodies (pydantic, extra fields refused), the patterns
they hold values to, and the words a person gets for a value that does not fit (``worded_errors``,
used for every 422). Pure; no route here."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from appliance import credentials
from appliance.store.records import MODERATIONS, Moderation, OriginalsPolicy
from appliance.validation import is_secret, problem

if TYPE_CHECKING:
    pass


ACCENT_PATTERN = r"^#[0-9A-Fa-f]{6}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    """An event as the operator creates it (``POST /api/events``) or the cloud backend pushes it
    (``PUT /api/events/{code}``)."""

    name: str = Field(min_length=1, max_length=120)
    functions: list[str] = Field(default_factory=lambda: ["main"], max_length=50)
    originals: OriginalsPolicy = "all"


class OriginalsIn(_Body):
    originals: OriginalsPolicy


class EventEditIn(_Body):
    """What the operator changes of an event (``PATCH /api/events/{code}``): only the fields sent;
    ``null`` clears a date, an accent or a cover."""

    name: str | None = Field(None, min_length=1, max_length=120)
    moderation: Moderation | None = None
    face_search: bool | None = None
    date: str | None = Field(None, description="the event's day, yyyy-mm-dd")
    accent: str | None = Field(None, pattern=ACCENT_PATTERN, description="the guest pages' colour, #rrggbb")
    cover_photo_id: StrictInt | None = Field(None, ge=1, le=2**63 - 1, description="a photo of the event")
    add_functions: list[str] | None = Field(
        None,
        max_length=50,
        description="functions to declare (one already there changes nothing); camera keys name one",
    )

    @field_validator("date")
    @classmethod
    def _a_day(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
        raise ValueError(f"{value!r} is not a day written yyyy-mm-dd (like 2026-12-24)")

    @model_validator(mode="after")
    def _no_null_switch(self) -> EventEditIn:
        for name, words in (
            ("name", "a name"),
            ("moderation", "one of " + ", ".join(MODERATIONS)),
            ("face_search", "true or false"),
            ("add_functions", "a list of names"),
        ):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: send {words}, or leave it out")
        return self


ModerateAction = Literal["approve", "reject", "hide", "unhide"]


class ModerateIn(_Body):
    """The host's decision on photos of one event, as the operator makes it."""

    action: ModerateAction
    ids: list[StrictInt] = Field(min_length=1, max_length=10_000)  # lax mode took true as photo 1

    @field_validator("ids")
    @classmethod
    def _photo_ids(cls, value: list[int]) -> list[int]:
        if any(not 1 <= i <= 2**63 - 1 for i in value):
            raise ValueError("photo ids are whole numbers from 1 up")
        return value


class KeyIn(_Body):
    """A camera key the operator makes (``POST /api/keys``): for a function the event declared;
    none given, the event's only function (422 in words for a typo, an empty name, or none given
    to an event of several)."""

    event: str = Field(pattern=f"^[{credentials.ALPHABET}]{{{credentials.EVENT_CODE_LENGTH}}}$")
    camera: str = Field(min_length=1, max_length=64)
    function: str | None = Field(None, max_length=64)


MAX_SQL_INT = 2**63 - 1  # SQLite's INTEGER; a larger number is a 422, not an OverflowError
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,63}$"
EVENT_CODE_PATTERN = f"^[{credentials.ALPHABET}]{{{credentials.EVENT_CODE_LENGTH}}}$"


# The request patterns in words, for 422 answers a person reads (``{value}``: what was sent).
PATTERN_WORDS = {
    ACCENT_PATTERN: "{value} is not a colour written #rrggbb (like #aa3355)",
    EVENT_CODE_PATTERN: f"{{value}} is not an event code: an event code is {credentials.EVENT_CODE_LENGTH}"
    f" characters from {credentials.ALPHABET}",
    USERNAME_PATTERN: "3 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
    r"^[A-Za-z0-9]+$": "letters and digits only",
    r"^[\x21-\x7e]+$": "printable ASCII characters without spaces",
}


def worded_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors (``loc``, ``type``, ``msg``, ``input``, ...) with each ``msg``
    in words: what was wrong and what is allowed. A secret's or a PIN's value is not sent back."""
    worded = []
    for error in errors:
        name = str(error["loc"][-1]) if error.get("loc") else ""
        secret = is_secret(name, None)
        if tuple(error.get("loc", ())) == ("body",) and error["type"] == "missing":
            msg = "a JSON body is required"
        else:
            msg = problem(error, patterns=PATTERN_WORDS, secret=secret)
        item = {**error, "msg": msg}
        if secret:
            item.pop("input", None)
        worded.append(item)
    return worded


class KeyPush(_Body):
    """A camera key pushed by the cloud backend: its secret, or a scrypt hash the box verifies."""

    event: str = Field(pattern=EVENT_CODE_PATTERN)
    camera: str = Field(min_length=1, max_length=64)
    function: str = Field("main", min_length=1, max_length=64)
    secret: str | None = Field(None, min_length=8, max_length=128, pattern=r"^[\x21-\x7e]+$")
    secret_hash: str | None = Field(None, max_length=400)

    @model_validator(mode="after")
    def _one_secret(self) -> KeyPush:
        if (self.secret is None) == (self.secret_hash is None):
            raise ValueError("give exactly one of secret and secret_hash")
        if self.secret_hash is not None and not credentials.valid_hash(self.secret_hash):
            raise ValueError("secret_hash must be scrypt$<log2 n 10-20>$<r>$<p>$<salt b64>$<key b64>")
        return self


class PinIn(_Body):
    pin: str | None = Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$")


class QuotaIn(_Body):
    index_quota: int | None = Field(ge=0, le=MAX_SQL_INT, strict=True)


def matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None

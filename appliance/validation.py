"""pydantic's validation errors in a person's words: what was given, and what is allowed, without
a regex or pydantic's phrasing ("Input should be...", "Value error, ..."). Shared by the settings
(``appliance.configerrors``) and the admin API's 422 answers (``appliance.control.api``), which
each add where the value came from; and the nearest of a few names to a typo (``nearest``, for a
"did you mean"). Pure functions; run on the caller's thread.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "true or false"),
    (int, "a whole number"),
    (float, "a number"),
    (Path, "a path"),
    (list, "a list"),
    (str, "text"),
)
_BY_TYPE = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a table of fields",
    "model_type": "a table of fields",
    "model_attributes_type": "a table of fields",
}
_BOUND_WORDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
_SECRET_WORDS = ("secret", "password", "pin", "token")


def field_of(model: type[BaseModel], loc: tuple[int | str, ...]) -> FieldInfo | None:
    """The field ``loc`` names, walking nested models (``("ftp", "port")``), or None."""
    field: FieldInfo | None = None
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        field = current.model_fields[part]
        current = submodel(field.annotation)
    return field


def submodel(annotation: object) -> type[BaseModel] | None:
    """The model a field holds (also inside ``X | None``), or None for a plain value."""
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def is_secret(name: str, field: FieldInfo | None) -> bool:
    """A value never repeated back: a SecretStr, or a field named like a secret or a PIN."""
    annotation = field.annotation if field is not None else None
    if SecretStr in (typing.get_args(annotation) or (annotation,)):
        return True
    return any(word in name.lower() for word in _SECRET_WORDS)


def shown(value: Any) -> str | None:
    """A given value as the person typed it (strings quoted, long ones cut), or None for a
    table or list, which is better not repeated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:39] + "…")
    return None


def allowed(field: FieldInfo | None, kind: str | None = None) -> str | None:
    """What a field takes, in words: ``a whole number from 0 to 65535``; None when nothing is known."""
    bounds: dict[str, Any] = {}
    if field is not None:
        for item in field.metadata:
            for cls, word in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt")):
                if isinstance(item, cls):
                    bounds[word] = getattr(item, word)
        if kind is None:
            kind = _kind(field.annotation)
    if "ge" in bounds and "le" in bounds:
        limits = f"from {bounds['ge']} to {bounds['le']}"
    else:
        limits = " and ".join(f"{_BOUND_WORDS[k]} {v}" for k, v in bounds.items())
    if kind and limits:
        return f"{kind} {limits}" if limits.startswith("from") else f"{kind}, {limits}"
    return kind or limits or None


def _kind(annotation: object) -> str | None:
    candidates = [a for a in (typing.get_args(annotation) or (annotation,)) if a is not type(None)]
    for candidate in candidates:
        origin = typing.get_origin(candidate) or candidate
        for cls, words in _KINDS:
            if isinstance(origin, type) and issubclass(origin, cls):
                return words
    return None


def alternation(pattern: str) -> str | None:
    """``^(DEBUG|INFO)$`` -> ``one of DEBUG, INFO``; None for any other pattern."""
    found = re.fullmatch(r"\^\(([\w|]+)\)\$", pattern)
    return f"one of {', '.join(found.group(1).split('|'))}" if found else None


def problem(
    error: ErrorDetails,
    *,
    field: FieldInfo | None = None,
    patterns: Mapping[str, str] | None = None,
    secret: bool = False,
) -> str:
    """What is wrong with one value, without its name: ``70000 is not allowed; it must be a whole
    number from 0 to 65535``. ``patterns`` gives a regex's rule in words (``{value}`` in it is
    replaced by the value, else the rule follows "it must be"); ``secret`` never repeats the value."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        reason = str(ctx["error"])
        if isinstance(ctx["error"], ipaddress.AddressValueError):  # "Expected 4 octets in '10.0.0'"
            return f"not an IPv4 address: {reason[:1].lower()}{reason[1:]}"
        return reason
    if kind == "extra_forbidden":
        return "is not a field of this request"
    if kind == "json_invalid":
        return "is not valid JSON"
    rule: str | None = None
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        rule = (patterns or {}).get(pattern) or alternation(pattern) or f"text matching {pattern}"
        if "{value}" in rule:
            value = shown(error.get("input"))
            return rule.format(value=value if value is not None and not secret else "that")
    elif kind == "literal_error":
        rule = "one of " + ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
    elif kind in ("string_too_short", "string_too_long", "too_short", "too_long"):
        limit = ctx.get("min_length", ctx.get("max_length"))
        unit = "character" if kind.startswith("string") else "item"
        least = "at least" if kind.endswith("short") else "at most"
        rule = f"{least} {limit} {unit}{'' if limit == 1 else 's'}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        rule = allowed(field) if field is not None else None
        rule = rule or " and ".join(f"{_BOUND_WORDS[k]} {v}" for k, v in ctx.items() if k in _BOUND_WORDS)
    elif kind in _BY_TYPE:
        rule = allowed(field, _BY_TYPE[kind]) if kind.startswith(("int", "float")) else _BY_TYPE[kind]
    if rule is None:
        return str(error["msg"]).replace("Input should be", "must be")
    value = None if secret else shown(error.get("input"))
    return f"{value} is not allowed; it must be {rule}" if value is not None else f"must be {rule}"


def nearest(word: str, choices: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The one of ``choices`` closest to a mistyped ``word`` (difflib's ratio of at least
    ``cutoff``), for a "did you mean" (``cermony`` -> ``ceremony``); None when none is close."""
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None

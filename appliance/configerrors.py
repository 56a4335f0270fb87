"""Why the settings were refused, in a person's words: the setting's dotted name, where it was read
from (``shutterbox.toml`` and its line, or the environment variable's name), the value given and
what is allowed; an unknown setting gets the nearest real one ("did you mean ftp.passive_ports?").

``appliance.config`` calls it when pydantic refuses the settings; the model is handed in, so this
module imports nothing of the config. Runs on the thread that loads the settings (the main one).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from appliance.validation import field_of, is_secret, problem, submodel

ENV_PREFIX = "SHUTTERBOX_"

# Settings whose pattern is not a plain list of choices, in words (a test fails when a patterned
# setting is missing here: its error would otherwise show the regex).
PATTERN_RULES: dict[str, str] = {
    "cloud.prefix": "1 to 64 letters, digits and _ . - /",
    "mdns.name": "a host label: up to 63 lower-case letters, digits and -, starting with a letter or digit",
    "guest.public_url": "a base address such as http://photos.local or https://photos.example:8443, no path",
}

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


@dataclass(frozen=True)
class Sources:
    """Where the settings were read from: the file (its text, when it exists) and the environment."""

    file: Path
    text: str | None
    environ: Mapping[str, str]

    def variable(self, loc: Sequence[str]) -> str | None:
        """The environment variable that set ``loc`` (or the section holding it), as spelled."""
        by_upper = {name.upper(): name for name in self.environ}
        for end in range(len(loc), 0, -1):
            wanted = ENV_PREFIX + "__".join(part.upper() for part in loc[:end])
            if wanted in by_upper:
                return by_upper[wanted]
        return None

    def where(self, loc: Sequence[str]) -> str | None:
        """``variable SHUTTERBOX_FTP__PORT``, ``/data/shutterbox.toml line 3``, or None."""
        variable = self.variable(loc)
        if variable is not None:  # the environment wins over the file
            return f"variable {variable}"
        if self.text is None:
            return None
        line = toml_line(self.text, loc)
        return f"{self.file} line {line}" if line else str(self.file)


def toml_line(text: str, loc: Sequence[str]) -> int | None:
    """The line of ``text`` that sets ``loc`` (a key, or a table's header), or None."""
    table: tuple[str, ...] = ()
    wanted = tuple(loc)
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header and not line.lstrip().startswith("[["):
            table = _dotted(header.group(1))
            if table == wanted:
                return number
            continue
        key = _KEY.match(line)
        if key:
            path = (*table, *_dotted(key.group(1)))
            shared = min(len(path), len(wanted))  # ``hostnames = [...]`` sets ``tls.hostnames.1`` too
            if path[:shared] == wanted[:shared]:
                return number
    return None


def _dotted(key: str) -> tuple[str, ...]:
    return tuple(
        part.strip().strip("\"'") for part in re.findall(r"""[^."']+|"[^"]*"|'[^']*'""", key) if part.strip()
    )


def suggestion(model: type[BaseModel], loc: Sequence[str]) -> str | None:
    """The real setting nearest to the unknown ``loc``: the same key in another section, else
    the closest name in its own section (``ftp.pasive_ports`` -> ``ftp.passive_ports``)."""
    *parent, name = loc
    field = field_of(model, tuple(parent)) if parent else None
    section = submodel(field.annotation) if field is not None else (model if not parent else None)
    if section is None:
        return None
    for other, other_field in model.model_fields.items():
        holder = submodel(other_field.annotation)
        if holder is not None and name in holder.model_fields and [other] != parent:
            return f"{other}.{name}"
    close = difflib.get_close_matches(name.lower(), list(section.model_fields), n=1, cutoff=0.6)
    return ".".join((*parent, close[0])) if close else None


def unknown(model: type[BaseModel], loc: Sequence[str], where: str | None) -> str:
    """``unknown setting ftp.pasive_ports (where); did you mean ftp.passive_ports?``"""
    text = "unknown setting " + ".".join(loc) + (f" ({where})" if where else "")
    nearest = suggestion(model, loc)
    return text + (f"; did you mean {nearest}?" if nearest else "")


def describe(error: ErrorDetails, model: type[BaseModel], sources: Sources) -> str:
    """One refused value: ``ftp.port (shutterbox.toml line 2): 70000 is not allowed; it must be...``."""
    loc = [str(part) for part in error["loc"]]
    where = sources.where(loc)
    if error["type"] == "extra_forbidden":
        return unknown(model, loc, where)
    dotted = ".".join(loc)
    field = field_of(model, tuple(loc))
    worded = problem(
        error,
        field=field,
        patterns={str((error.get("ctx") or {}).get("pattern")): PATTERN_RULES[dotted]}
        if dotted in PATTERN_RULES
        else None,
        secret=is_secret(dotted, field),
    )
    return f"{dotted}{f' ({where})' if where else ''}: {worded}"


def explain(exc: ValidationError, model: type[BaseModel], sources: Sources) -> str:
    """Every refused setting, one per line after the first."""
    return message([describe(error, model, sources) for error in exc.errors()])


def message(problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return f"invalid configuration: {problems[0]}"
    return "invalid configuration:" + "".join(f"\n  {line}" for line in problems)

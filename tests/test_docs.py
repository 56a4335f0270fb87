"""The documentation keeps up with the code: every setting is in docs/configuration.md and every
CLI command is in docs/operator-guide.md.

Convention (stated in docs/configuration.md): each setting is a table row whose first cell is its
dotted key in backticks (`ftp.passive_ports`, or `log_level` at the top level) and which names
its environment variable in backticks (`SHUTTERBOX_FTP__PASSIVE_PORTS`); each section has a
heading naming its table (`[ftp]`).
"""

from __future__ import annotations

import argparse
import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from appliance.cli import _parser
from appliance.config import Settings, load_settings
from appliance.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs"
CONFIGURATION = DOCS / "configuration.md"
OPERATOR_GUIDE = DOCS / "operator-guide.md"

_ROW_KEY = re.compile(r"^\|\s*`([a-z_][a-z0-9_.]*)`\s*\|", re.MULTILINE)


def _section_model(annotation: object) -> type[BaseModel] | None:
    """The pydantic model a field holds (also inside ``X | None``), or None for a plain value."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _settings(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Dotted paths of every leaf setting, walking nested section models recursively."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        section = _section_model(field.annotation)
        if section is None:
            yield path
        else:
            yield from _settings(section, path)


def _sections(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        section = _section_model(field.annotation)
        if section is not None:
            yield (*prefix, name)
            yield from _sections(section, (*prefix, name))


def _table_rows(text: str) -> dict[str, str]:
    """First-cell key -> the whole table row, for rows that start with a backticked key."""
    rows = {}
    for line in text.splitlines():
        match = _ROW_KEY.match(line)
        if match:
            rows[match.group(1)] = line
    return rows


SETTINGS = sorted(_settings(Settings))


def test_the_settings_walk_finds_nested_fields() -> None:
    dotted = {".".join(path) for path in SETTINGS}
    assert {"ftp.passive_ports", "tls.hostnames", "hotfolder.settle_seconds", "log_level"} <= dotted
    assert "ftp" not in dotted


@pytest.mark.parametrize("path", SETTINGS, ids=".".join)
def test_every_setting_is_documented(path: tuple[str, ...]) -> None:
    rows = _table_rows(CONFIGURATION.read_text(encoding="utf-8"))
    dotted = ".".join(path)
    env = "SHUTTERBOX_" + "__".join(part.upper() for part in path)
    assert dotted in rows, f"docs/configuration.md has no table row for `{dotted}`"
    assert f"`{env}`" in rows[dotted], f"the row of `{dotted}` does not name `{env}`"


def test_every_section_has_a_heading() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    for path in _sections(Settings):
        table = ".".join(path)
        assert re.search(rf"^#+ .*`\[{re.escape(table)}\]`", text, re.MULTILINE), (
            f"docs/configuration.md has no heading for [{table}]"
        )


def test_no_documented_setting_is_stale() -> None:
    documented = set(_table_rows(CONFIGURATION.read_text(encoding="utf-8")))
    real = {".".join(path) for path in SETTINGS}
    assert documented - real == set(), "docs/configuration.md documents settings that do not exist"


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the CLI, e.g. ("status",), ("key",), ("key", "revoke")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


COMMANDS = sorted(_commands(_parser()))


def test_the_command_walk_finds_subcommands() -> None:
    assert {("up",), ("check-config",), ("key", "revoke"), ("ca-cert",)} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_cli_command_is_in_the_operator_guide(command: tuple[str, ...]) -> None:
    text = OPERATOR_GUIDE.read_text(encoding="utf-8")
    mention = "shutterbox " + " ".join(command)
    assert re.search(rf"{re.escape(mention)}(?![\w-])", text), (
        f"docs/operator-guide.md never shows `{mention}`"
    )


def _where_settings_come_from() -> str:
    text = CONFIGURATION.read_text(encoding="utf-8")
    start = text.index("## Where settings come from")
    return text[start : text.index("\n#", start + 1)]


def test_unknown_variables_do_what_the_docs_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each unknown variable docs/configuration.md shows is refused by the box (a typo must not pass
    silently), with the very message the docs quote."""
    section = _where_settings_come_from()
    real = {"SHUTTERBOX_" + "__".join(part.upper() for part in path) for path in SETTINGS}
    shown = set(re.findall(r"`(SHUTTERBOX_[A-Z0-9_]+)`", section)) - real - {"SHUTTERBOX_DATA"}
    assert {"SHUTTERBOX_LOGLEVEL", "SHUTTERBOX_FTP__PROT"} <= shown, "the examples are gone from the docs"
    assert "ignored" not in section, "docs/configuration.md says an unknown setting is ignored"
    for name in [n for n in os.environ if n.upper().startswith("SHUTTERBOX_")]:
        monkeypatch.delenv(name)
    for name in sorted(shown):
        with monkeypatch.context() as env:
            env.setenv(name, "1")
            with pytest.raises(ConfigError) as refused:
                load_settings(tmp_path)
        message = str(refused.value).removeprefix("invalid configuration: ")
        assert name in message
        assert f"`{message}`" in section.replace("\n  ", " "), (
            f"the docs do not quote the box's words:\n{message}"
        )

"""A wrong setting is named in a person's words, with where it was read from (the file's line or
the variable's name) and what is allowed; an unknown one suggests the nearest real one. In-process:
``load_settings`` is what ``shutterbox up`` and ``check-config`` call."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from appliance.config import Settings, load_settings
from appliance.configerrors import PATTERN_RULES
from appliance.errors import ConfigError
from tests.test_docs import SETTINGS


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("SHUTTERBOX_")]:
        monkeypatch.delenv(name)


def _error(data: Path, toml: str | None = None) -> str:
    if toml is not None:
        (data / "shutterbox.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(data)
    return str(caught.value)


def test_a_typo_in_the_file_suggests_the_setting_and_names_the_line(tmp_path: Path) -> None:
    message = _error(tmp_path, '# venue\n[ftp]\nport = 2121\npasive_ports = "60000-60099"\n')
    assert "Extra inputs" not in message
    assert (
        f"unknown setting ftp.pasive_ports ({tmp_path / 'shutterbox.toml'} line 4);"
        " did you mean ftp.passive_ports?"
    ) in message


def test_a_typo_in_a_variable_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHUTTERBOX_FTP__PASIVE_PORTS", "60000-60099")
    message = _error(tmp_path)
    assert (
        "unknown setting ftp.pasive_ports (variable SHUTTERBOX_FTP__PASIVE_PORTS);"
        " did you mean ftp.passive_ports?"
    ) in message


def test_an_unknown_top_level_variable_suggests_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHUTTERBOX_LOGLEVEL", "DEBUG")
    message = _error(tmp_path)
    assert message.endswith(
        "unknown setting loglevel (variable SHUTTERBOX_LOGLEVEL); did you mean log_level?"
    ), message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        # an unknown section, and a key of another section: suggestions look where the key lives
        ("[fpt]\nport = 21\n", "unknown setting fpt (FILE line 1); did you mean ftp?"),
        (
            "[ftp]\nreserve_mb = 64\n",
            "unknown setting ftp.reserve_mb (FILE line 2); did you mean storage.reserve_mb?",
        ),
        ("[ftp]\ncolour = 'red'\n", "unknown setting ftp.colour (FILE line 2)"),
        ("loglevel = 'DEBUG'\n", "unknown setting loglevel (FILE line 1); did you mean log_level?"),
    ],
)
def test_unknown_keys_in_the_file(tmp_path: Path, toml: str, expected: str) -> None:
    message = _error(tmp_path, toml)
    assert expected.replace("FILE", str(tmp_path / "shutterbox.toml")) in message, message
    if "did you mean" not in expected:
        assert "did you mean" not in message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[ftp]\nport = 70000\n",
            "ftp.port (FILE line 2): 70000 is not allowed; it must be a whole number from 0 to 65535",
        ),
        (
            "[ftp]\nport = 'abc'\n",
            "ftp.port (FILE line 2): 'abc' is not allowed; it must be a whole number from 0 to 65535",
        ),
        (
            "[ftp]\nmax_connections = 0\n",
            "ftp.max_connections (FILE line 2): 0 is not allowed; it must be a whole number, at least 1",
        ),
        (
            "[faces]\nmatch_threshold = 2\n",
            "faces.match_threshold (FILE line 2): 2 is not allowed;"
            " it must be a number, more than 0 and less than 1.2",
        ),
        (
            "log_level = 'LOUD'\n",
            "log_level (FILE line 1): 'LOUD' is not allowed; it must be one of DEBUG, INFO, WARNING, ERROR",
        ),
        (
            "[tls]\nhostnames = ['box', 3]\n",
            "tls.hostnames.1 (FILE line 2): 3 is not allowed; it must be text",
        ),
        ("[mdns]\nname = 'Box One'\n", "mdns.name (FILE line 2): 'Box One' is not allowed; it must be"),
        (
            "[ftp]\ntls_required = 'sometimes'\n",
            "ftp.tls_required (FILE line 2): 'sometimes' is not allowed; it must be true or false",
        ),
        (
            "[ftp]\npassive_ports = '70000-70010'\n",
            "ftp.passive_ports (FILE line 2):"
            " port range '70000-70010' must satisfy 1 <= LOW <= HIGH <= 65535",
        ),
    ],
)
def test_bad_values_say_what_is_allowed(tmp_path: Path, toml: str, expected: str) -> None:
    message = _error(tmp_path, toml)
    assert expected.replace("FILE", str(tmp_path / "shutterbox.toml")) in message, message
    assert "should match pattern" not in message and "^" not in message, message
    assert "Value error" not in message and "Input should" not in message, message


def test_a_bad_value_in_a_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shutterbox.toml").write_text("[ftp]\nport = 2200\n")
    monkeypatch.setenv("SHUTTERBOX_FTP__PORT", "99999")
    message = _error(tmp_path)
    assert "ftp.port (variable SHUTTERBOX_FTP__PORT): '99999' is not allowed" in message, message


def test_every_problem_is_reported_once_each(tmp_path: Path) -> None:
    message = _error(tmp_path, "[ftp]\nport = 70000\npasive_ports = '1-2'\n")
    assert message.startswith("invalid configuration:"), message
    assert "ftp.port" in message and "ftp.pasive_ports" in message


def _patterned(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        if any(getattr(m, "pattern", None) for m in field.metadata):
            found.append(prefix + name)
    return found


def test_every_patterned_setting_has_a_readable_rule() -> None:
    """A new ``pattern=`` setting needs its rule in words, or its error would be a regex."""
    sections = {path[0] for path in SETTINGS if len(path) > 1}
    patterned = _patterned(Settings)
    for section in sections:
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        patterned += _patterned(model, f"{section}.")
    assert patterned, "the walk found no patterned settings"
    missing = [name for name in patterned if name not in PATTERN_RULES and not _alternation(name)]
    assert missing == [], f"no readable rule in appliance/configerrors.py for {missing}"


def _alternation(dotted: str) -> bool:
    """``^(A|B|C)$`` patterns word themselves ("one of A, B, C")."""
    section, _, name = dotted.rpartition(".")
    model = Settings.model_fields[section].annotation if section else Settings
    assert isinstance(model, type) and issubclass(model, BaseModel)
    [pattern] = [m.pattern for m in model.model_fields[name].metadata if getattr(m, "pattern", None)]
    return re.fullmatch(r"\^\((\w+\|)+\w+\)\$", pattern) is not None

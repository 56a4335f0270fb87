"""The ``shutterbox`` command's text for a person, in-process and with no box running: ``status``
and ``photos`` read the database read-only, ``ca-cert`` reads the certificate from the disk. The
same commands against a running box are in tests/test_cli.py."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest

from appliance import plaintext
from appliance.cli import main
from appliance.layout import Layout
from appliance.store import Store

EXIT_OK, EXIT_NOT_RUNNING, EXIT_CONFIG = 0, 3, 4
PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("SHUTTERBOX_")]:
        monkeypatch.delenv(name)


def _stopped_box(data: Path, *events: str) -> list[str]:
    """A data folder as a stopped box leaves it: its database, with ``events`` made."""

    async def make() -> list[str]:
        async with Store(Layout(data).database) as store:
            return [(await store.create_event(name)).code for name in events]

    data.mkdir(parents=True, exist_ok=True)
    return asyncio.run(make())


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_text_is_aligned_plain_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _stopped_box(tmp_path, "Smith wedding")
    code, out, _ = _run(capsys, "status", "--data", str(tmp_path))
    assert code == EXIT_OK
    assert not re.search(r"[{}\[\]']|True|False|None", out), f"Python reprs in:\n{out}"
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["running", "no"], out
    # label/value lines of one section start their values in one column
    queue = lines.index("queue")
    section = []
    for line in lines[queue + 1 :]:
        if not line.startswith("  "):
            break
        section.append(line)
    assert section, out
    columns = {len(line) - len(line[2:].split("  ", 1)[1].lstrip()) for line in section if "  " in line[2:]}
    assert len(columns) == 1, f"values not aligned:\n{out}"
    assert any(line.split()[:2] == ["photos", "total"] and line.split()[-1] == "0" for line in section), out


def test_status_json_unchanged_by_the_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _stopped_box(tmp_path, "json")
    code, out, _ = _run(capsys, "status", "--data", str(tmp_path), "--json")
    assert code == EXIT_OK
    status = json.loads(out)
    assert status["running"] is False
    assert status["queue"]["photos_by_state"] == {}
    assert status["queue"]["photos_total"] == 0


def test_photos_when_there_are_none_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [event] = _stopped_box(tmp_path, "empty")
    code, out, _ = _run(capsys, "photos", "--data", str(tmp_path), "--event", event)
    assert (code, out) == (EXIT_OK, f"no photos in event {event}\n")
    code, out, _ = _run(capsys, "photos", "--data", str(tmp_path))
    assert (code, out) == (EXIT_OK, "no photos yet\n")
    code, out, _ = _run(capsys, "photos", "--data", str(tmp_path), "--json")
    assert (code, json.loads(out)) == (EXIT_OK, [])


def test_ca_cert_reads_the_disk_while_the_box_is_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "ca.crt").write_text(PEM)
    code, out, err = _run(capsys, "ca-cert", "--data", str(tmp_path))
    assert (code, out, err) == (EXIT_OK, PEM, "")


def test_ca_cert_prints_the_operators_chain_when_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = tmp_path / "venue-chain.pem"
    chain.write_text(PEM + PEM)
    monkeypatch.setenv("SHUTTERBOX_TLS__CERT_FILE", str(chain))
    tmp_path.joinpath("data").mkdir()
    code, out, _ = _run(capsys, "ca-cert", "--data", str(tmp_path / "data"))
    assert (code, out) == (EXIT_OK, PEM + PEM)

    chain.unlink()
    code, out, err = _run(capsys, "ca-cert", "--data", str(tmp_path / "data"))
    assert code == EXIT_CONFIG
    assert out == ""
    assert str(chain) in err and "tls.cert_file" in err, err


def test_ca_cert_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "ca-cert", "--data", str(tmp_path))
    assert code == EXIT_NOT_RUNNING
    assert out == ""
    assert str(tmp_path / "tls" / "ca.crt") in err, err
    assert "first start" in err and "shutterbox up" in err, err


# --- the text building blocks


def test_table_aligns_columns_and_cuts_long_cells() -> None:
    rows = [
        {"id": 1, "camera": "Canon R5 #1", "name": "IMG_0001.JPG"},
        {"id": 12345, "camera": "a", "name": "a-very-long-file-name-from-a-transmitter-" + "x" * 60 + ".JPG"},
    ]
    columns = [
        plaintext.Column("id", lambda r: str(r["id"]), right=True),
        plaintext.Column("camera", lambda r: r["camera"]),
        plaintext.Column("name", lambda r: r["name"], width=40),
    ]
    lines = plaintext.table(rows, columns)
    assert lines[0].split() == ["id", "camera", "name"]
    starts = {line.index("IMG") if "IMG" in line else line.index("a-very") for line in lines[1:]}
    assert starts == {lines[0].index("name")}
    assert lines[2].endswith("…")
    assert len(lines[2]) - lines[0].index("name") == 40
    assert lines[1].startswith("    1") and lines[2].startswith("12345")


def test_sections_render_nested_mappings() -> None:
    lines = plaintext.sections(
        {
            "running": True,
            "queue": {"photos_by_state": {"queued": 11}, "photos_total": 11, "oldest_queued_at": None},
            "disk": {"free_bytes": 3 * 1024**3, "accepting_uploads": False},
            "load": [0.5, 1.25],
            "rates": {"shooting_per_s": 1.5, "bytes_in_per_s": 2048, "uptime_s": 4000},
            "alerts": [],
        }
    )
    text = "\n".join(lines)
    assert "{" not in text and "'" not in text
    assert lines[0] == "running  yes"
    assert "queue" in lines
    assert "  photos by state" in lines
    assert "    queued  11" in lines
    assert "  " + "free".ljust(len("accepting uploads")) + "  3.0 GB" in lines
    assert "  accepting uploads  no" in lines
    assert "load     0.5, 1.25" in lines
    assert "alerts   none" in lines
    assert "  shooting per s  1.5" in lines
    assert "  in              2.0 KB/s" in lines
    assert "  uptime          66 min" in lines


def test_a_quota_that_is_not_a_number_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["event", "quota", "abcdefgh", "lots", "--data", str(tmp_path)])
    assert usage.value.code == 2
    assert "'lots' is not a number of photos (or 'none' for no limit)" in capsys.readouterr().err

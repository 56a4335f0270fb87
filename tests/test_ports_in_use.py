"""A port the box needs is taken by another program: the box says which of its listeners and
which setting moves it, before it starts anything, with no traceback (tried: the admin port of a
second box ended the start with uvicorn's "[Errno 98] error while attempting to bind")."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.boxproc import make_box

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("setting", ["admin__port", "web__port", "ftp__port"])
def test_a_port_in_use_is_named_with_the_setting_that_moves_it(tmp_path: Path, setting: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        box = make_box(tmp_path / "data", **{setting: str(port), "admin__host": "127.0.0.1"})
        with pytest.raises(RuntimeError, match="box exited") as failed:
            box.start(timeout=60)
    said = str(failed.value)
    name = setting.replace("__", ".")
    assert box.proc is not None and box.proc.returncode == 4, said  # a configuration to change
    assert f"{name} = {port}" in said and f"SHUTTERBOX_{setting.upper()}" in said, said
    assert "in use" in said and "Traceback" not in said and "Errno" not in said, said
    assert not (tmp_path / "data" / "shutterbox.db").exists(), (
        "nothing may start before the ports are checked"
    )

"""Typos create nothing (issue #18): a camera key names a function its event declared. People (the
CLI, the console and LAN clients through ``POST /api/keys``) get an error in words listing the
event's functions and the nearest one; functions are declared at ``event create --function`` or
added with ``event edit --add-function`` (``PATCH /api/events/{code}`` ``add_functions``). The
cloud backend's push (``PUT /api/keys/{username}``) may still create a function: it is the
source of truth."""

from __future__ import annotations

import secrets

import pytest

from tests.boxproc import BoxProcess

pytestmark = pytest.mark.e2e

EXIT_REFUSED = 1


def _event(box: BoxProcess, *functions: str) -> str:
    args = ["event", "create", "Wedding"]
    for function in functions:
        args += ["--function", function]
    return str(box.cli(*args)["code"])


def _functions(box: BoxProcess, code: str) -> list[str]:
    [event] = [e for e in box.cli("event", "list") if e["code"] == code]
    return list(event["functions"])


def _key(box: BoxProcess, code: str, *function: str) -> tuple[int, str, str]:
    args = ["key", "create", "--event", code, "--camera", "Canon R5"]
    if function:
        args += ["--function", *function]
    result = box.run_cli(*args, "--json")
    return result.returncode, result.stdout, result.stderr


def test_a_typo_is_refused_with_the_functions_and_the_nearest(box: BoxProcess) -> None:
    code = _event(box, "Ceremony", "Reception")
    status, _, stderr = _key(box, code, "cermony")
    assert status == EXIT_REFUSED
    assert (
        f"event {code} has no function 'cermony'; its functions are ceremony, reception."
        " Did you mean ceremony?"
    ) in stderr
    assert "Traceback" not in stderr
    assert _functions(box, code) == ["ceremony", "reception"]
    assert not box.cli("key", "list", "--event", code)


def test_a_function_nothing_resembles_gets_no_suggestion(box: BoxProcess) -> None:
    code = _event(box, "Ceremony", "Reception")
    status, _, stderr = _key(box, code, "zzzz")
    assert status == EXIT_REFUSED
    assert f"event {code} has no function 'zzzz'; its functions are ceremony, reception" in stderr
    assert "Did you mean" not in stderr
    assert _functions(box, code) == ["ceremony", "reception"]


def test_a_declared_function_in_other_letters_is_that_function(box: BoxProcess) -> None:
    code = _event(box, "Ceremony", "Reception")
    key = box.cli("key", "create", "--event", code, "--camera", "R5", "--function", "CEREMONY")
    assert key["function"] == "ceremony"
    assert _functions(box, code) == ["ceremony", "reception"]


def test_no_function_on_an_event_of_one_function_takes_it(box: BoxProcess) -> None:
    code = _event(box, "Party")
    key = box.cli("key", "create", "--event", code, "--camera", "R5")
    assert key["function"] == "party"
    assert _functions(box, code) == ["party"]


def test_no_function_on_an_event_of_several_is_refused(box: BoxProcess) -> None:
    code = _event(box, "Ceremony", "Reception")
    status, _, stderr = _key(box, code)
    assert status == EXIT_REFUSED
    assert f"event {code} has functions ceremony, reception: say which with --function" in stderr
    assert _functions(box, code) == ["ceremony", "reception"]  # no "main" added
    assert not box.cli("key", "list", "--event", code)


@pytest.mark.parametrize("name", ["", "   ", "__"])
def test_an_empty_function_name_is_refused(box: BoxProcess, name: str) -> None:
    code = _event(box, "Ceremony")
    status, _, stderr = _key(box, code, name)
    assert status == EXIT_REFUSED
    assert "function name is empty" in stderr
    assert "Traceback" not in stderr
    assert _functions(box, code) == ["ceremony"]


def test_event_create_refuses_an_empty_function_name(box: BoxProcess) -> None:
    result = box.run_cli("event", "create", "Blank", "--function", "Ceremony", "--function", " ", "--json")
    assert result.returncode == EXIT_REFUSED
    assert "function name is empty" in result.stderr


def test_event_edit_adds_a_function_then_a_key_may_use_it(box: BoxProcess) -> None:
    code = _event(box, "Ceremony")
    edited = box.cli("event", "edit", code, "--add-function", "Speeches", "--add-function", "Dinner")
    assert edited["functions"] == ["ceremony", "dinner", "speeches"]
    key = box.cli("key", "create", "--event", code, "--camera", "R5", "--function", "speeches")
    assert key["function"] == "speeches"
    text = box.run_cli("event", "edit", code, "--add-function", "Ceremony")
    assert text.returncode == 0, text.stderr
    assert "functions ceremony, dinner, speeches" in text.stdout


def test_event_edit_refuses_an_empty_function_name(box: BoxProcess) -> None:
    code = _event(box, "Ceremony")
    result = box.run_cli("event", "edit", code, "--add-function", "", "--json")
    assert result.returncode == EXIT_REFUSED
    assert "function name is empty" in result.stderr
    assert _functions(box, code) == ["ceremony"]


def test_admin_api_refuses_an_unknown_function_with_422(box: BoxProcess) -> None:
    code = _event(box, "Ceremony", "Reception")
    with box.admin_api() as api:
        answer = api.post("/api/keys", json={"event": code, "camera": "R5", "function": "receptoin"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith(
            f"event {code} has no function 'receptoin'; its functions are ceremony, reception."
            " Did you mean reception?"
        )
        several = api.post("/api/keys", json={"event": code, "camera": "R5"})
        assert several.status_code == 422, several.text
        blank = api.post("/api/keys", json={"event": code, "camera": "R5", "function": ""})
        assert blank.status_code == 422, blank.text
        assert "function name is empty" in str(blank.json()["detail"])
        added = api.patch(f"/api/events/{code}", json={"add_functions": ["Toasts"]})
        assert added.status_code == 200, added.text
        assert added.json()["functions"] == ["ceremony", "reception", "toasts"]
        empty = api.patch(f"/api/events/{code}", json={"add_functions": ["  "]})
        assert empty.status_code == 422, empty.text
        made = api.post("/api/keys", json={"event": code, "camera": "R5", "function": "toasts"})
        assert made.status_code == 201, made.text
    assert _functions(box, code) == ["ceremony", "reception", "toasts"]


def test_the_backends_push_may_still_create_a_function(box: BoxProcess) -> None:
    code = _event(box, "Ceremony")
    username = f"{code}-pushed"
    body = {"event": code, "camera": "R5", "function": "Portraits", "secret": secrets.token_urlsafe(12)}
    with box.admin_api() as api:
        answer = api.put(f"/api/keys/{username}", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["function"] == "portraits"
    assert _functions(box, code) == ["ceremony", "portraits"]

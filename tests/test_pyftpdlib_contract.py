"""The private parts of pyftpdlib our FTP package leans on still exist in the pinned pyftpdlib.

``appliance/ftp/handlers.py``, ``server.py`` and ``filesystem.py`` subclass pyftpdlib's handlers and
server to land a frame before its 226: they override private methods (``_make_epasv``,
``_on_dtp_connection``, ``_do_ssl_handshake``, ``_loop``) and read or set private attributes
(``_in_dtp_queue``, ``_current_type``, ``_closed``, ``_fileno``, ``_resp``). Should an upgrade rename
one, an override would silently never run and an attribute would silently be ours alone. The
names are read from our source (ast), not listed by hand: every single-underscore name a class of
ours defines, declares or reaches (``self._x``, ``super()._x``, ``other._x``, ``getattr(x, "_x")``)
is pyftpdlib's unless it is in ``OURS``, and each must exist on the pinned classes (a method or
class attribute, or an attribute their ``__init__`` and methods assign). ``OURS`` is checked the
other way: none of it may exist in pyftpdlib (an accidental override). In-process, no socket.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

import pyftpdlib
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("appliance.ftp.handlers", "appliance.ftp.server", "appliance.ftp.filesystem")

# The private names our subclasses add: helpers and state of our own, not pyftpdlib's.
OURS = frozenset(
    {
        # handlers.py
        "_admit",
        "_admitted",
        "_as_binary",
        "_connected_at",
        "_data_coming",
        "_drain",
        "_drop_queued",
        "_greeted",
        "_in_handshake",
        "_keep",
        "_leave_prelogin",
        "_log_prefix",
        "_login_expired",
        "_login_timer",
        "_refuse_if_banned",
        "_refused",
        "_say",
        # filesystem.py
        "_upload",
        # server.py
        "_back_off",
        "_episode_logged",
        "_pause",
        "_paused_since",
        "_resume_accepting",
        "_resume_call",
        "_session_failed",
        "_session_failures_logged_at",
        "_shortage_logged_at",
        "_unlogged_episodes",
    }
)


@dataclass(frozen=True)
class Use:
    """One private name as our source uses it."""

    module: str
    cls: str  # the class of ours it appears in
    name: str
    line: int
    on_self: bool  # defined in the class, or reached through self / super(); else another object's

    def where(self) -> str:
        return f"{self.module.replace('.', '/')}.py:{self.line} ({self.cls})"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_self(node: ast.expr) -> bool:
    """``self`` or ``super()``."""
    if isinstance(node, ast.Name):
        return node.id == "self"
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def _uses_in_class(module: str, node: ast.ClassDef) -> Iterator[Use]:
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _private(item.name):
            yield Use(module, node.name, item.name, item.lineno, on_self=True)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            if _private(item.target.id):
                yield Use(module, node.name, item.target.id, item.lineno, on_self=True)
        elif isinstance(item, ast.Assign):
            for target in item.targets:
                if isinstance(target, ast.Name) and _private(target.id):
                    yield Use(module, node.name, target.id, item.lineno, on_self=True)
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and _private(sub.attr):
            yield Use(module, node.name, sub.attr, sub.lineno, on_self=_is_self(sub.value))
        elif (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Name)
            and sub.func.id in ("getattr", "hasattr", "setattr")
            and len(sub.args) >= 2
            and isinstance(sub.args[1], ast.Constant)
            and isinstance(sub.args[1].value, str)
            and _private(sub.args[1].value)
        ):
            yield Use(module, node.name, sub.args[1].value, sub.lineno, on_self=_is_self(sub.args[0]))


def _import(module: str) -> ModuleType:
    with warnings.catch_warnings():
        # pyftpdlib builds on asyncore/asynchat, deprecated since Python 3.10 (imported once per process)
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(module)


def _tree(module: str) -> ast.Module:
    path = ROOT / (module.replace(".", "/") + ".py")
    return ast.parse(path.read_text(), str(path))


def _uses() -> list[Use]:
    return [
        use
        for module in MODULES
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.ClassDef)
        for use in _uses_in_class(module, node)
    ]


def _ours(cls: type) -> bool:
    return cls.__module__.startswith("appliance.")


def _foreign_mro(cls: type) -> list[type]:
    """pyftpdlib's part of a class's MRO (with the asynchat/asyncore it builds on)."""
    return [k for k in cls.__mro__ if not _ours(k) and k is not object]


@cache
def _assigned(cls: type) -> frozenset[str]:
    """Attributes a class's own methods set on ``self`` (``__init__`` and the rest)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(ast.parse(textwrap.dedent(source))):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Attribute) and _is_self(leaf.value):
                    names.add(leaf.attr)
    return frozenset(names)


def _has(classes: list[type], name: str) -> bool:
    return any(name in vars(k) or name in _assigned(k) for k in classes)


def _concrete() -> dict[str, list[type]]:
    """For each class of ours (by name), the pyftpdlib-based classes it ends up in: itself, or for
    a mixin such as ``_LandingMixin`` every class of ours that mixes it in."""
    classes = [
        obj
        for module in MODULES
        for obj in vars(_import(module)).values()
        if inspect.isclass(obj) and _ours(obj) and obj.__module__ in MODULES
    ]
    users: dict[str, list[type]] = {}
    for cls in dict.fromkeys(classes):  # a class imported into another of MODULES counts once
        if not _foreign_mro(cls):
            continue
        for part in cls.__mro__:
            if _ours(part):
                users.setdefault(part.__qualname__, []).append(cls)
    return users


def test_private_pyftpdlib_imports_exist() -> None:
    """``from pyftpdlib.x import _Private`` (checked first, as it would fail our own import)."""
    gone = []
    for module in MODULES:
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyftpdlib"):
                source = _import(str(node.module))
                gone += [
                    f"{node.module}.{alias.name} ({module})"
                    for alias in node.names
                    if _private(alias.name) and not hasattr(source, alias.name)
                ]
    assert not gone, f"pyftpdlib {pyftpdlib.__ver__} no longer has: {', '.join(gone)}"


def test_the_private_names_we_use_still_exist_in_pyftpdlib() -> None:
    users = _concrete()
    every_foreign = [k for classes in users.values() for cls in classes for k in _foreign_mro(cls)]
    every_foreign += [k for name in ("PassiveDTP", "ActiveDTP") for k in _pyftpdlib_class(name).__mro__]
    uses = [u for u in _uses() if u.name not in OURS]
    checked: set[str] = set()
    missing_on: dict[str, set[str]] = {}  # name -> the classes of ours whose pyftpdlib bases lack it
    used_at: dict[str, set[str]] = {}
    for use in uses:
        if use.on_self and use.cls not in users:
            continue  # a class of ours that is no pyftpdlib subclass (FtpService): its own state
        checked.add(use.name)
        if use.on_self:
            lacking = {cls.__name__ for cls in users[use.cls] if not _has(_foreign_mro(cls), use.name)}
        else:
            lacking = set() if _has(every_foreign, use.name) else {"any pyftpdlib class we use"}
        if lacking:
            missing_on.setdefault(use.name, set()).update(lacking)
            used_at.setdefault(use.name, set()).add(use.where())
    assert not missing_on, (
        f"pyftpdlib {pyftpdlib.__ver__} lacks private names appliance/ftp uses (an override that "
        "never runs, or state nobody else sets; a new helper of ours goes in OURS):\n"
        + "\n".join(
            f"  {name}: not on {', '.join(sorted(lacking))}; used at {', '.join(sorted(used_at[name]))}"
            for name, lacking in sorted(missing_on.items())
        )
    )
    # the walk does find them: these are the ones the landing and the passive range live by
    assert {"_in_dtp_queue", "_current_type", "_closed", "_fileno", "_resp", "_make_epasv"} <= checked


def test_our_own_private_names_do_not_shadow_pyftpdlib() -> None:
    users = _concrete()
    clashes = sorted(
        {
            f"{use.name} ({use.where()})"
            for use in _uses()
            if use.name in OURS and use.on_self
            for cls in users.get(use.cls, [])
            if _has(_foreign_mro(cls), use.name)
        }
    )
    assert not clashes, (
        f"pyftpdlib {pyftpdlib.__ver__} now defines names appliance/ftp keeps as its own "
        f"(an accidental override: rename ours, or move it out of OURS): {clashes}"
    )


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_name_in_ours_is_used(name: str) -> None:
    assert name in {u.name for u in _uses()}, f"{name} is in OURS but appliance/ftp no longer uses it"


def _pyftpdlib_class(name: str) -> type:
    cls: type = getattr(_import("pyftpdlib.handlers.ftp.dispatchers"), name)
    return cls

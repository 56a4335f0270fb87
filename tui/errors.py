"""Exceptions of the console package (raised by ``tui.client``, handled by the screens).

::

    ConsoleError
    ├── BoxUnreachable   no box answers on the control socket (not started, restarting, gone)
    └── ApiError         the box answered 4xx/5xx; carries the status and the box's ``detail``

Runs wherever it is raised: the console's asyncio thread (the only thread it has).
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base of every error the console raises on purpose."""


class BoxUnreachable(ConsoleError):
    """The control socket is missing or nothing answers on it."""


class ApiError(ConsoleError):
    """The box refused a request; ``detail`` is its reason, fit to show the operator."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

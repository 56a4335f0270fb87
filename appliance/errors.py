"""Exceptions of the appliance package.

::

    ShutterboxError
    ├── ConfigError          bad or unknown setting (names the key)
    ├── NotRunningError      the CLI could not reach a running box
    ├── StoreError           the queue database refused an operation
    │   └── NotFoundError    an event, key or photo that does not exist
    └── RejectedUpload       an upload was not accepted (carries the FTP reply)
        └── (formats.InvalidFile is translated into RejectedUpload where it enters)
"""

from __future__ import annotations


class ShutterboxError(Exception):
    """Base of every error raised on purpose by the appliance."""


class ConfigError(ShutterboxError):
    """The configuration is invalid."""


class NotRunningError(ShutterboxError):
    """No box answers on the control socket of the data folder."""


class StoreError(ShutterboxError):
    """The store refused an operation."""


class NotFoundError(StoreError):
    """The event, key or photo does not exist."""


class RejectedUpload(ShutterboxError):
    """An upload was refused; ``reply`` is the FTP reply line to send."""

    def __init__(self, reply: str, reason: str) -> None:
        super().__init__(reason)
        self.reply = reply
        self.reason = reason

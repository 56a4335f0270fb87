"""The camera's view: a jail per upload key (``DATA/ftp/<username>/``), with camera-friendly
semantics. Runs on the session's thread.

- writes never touch the jail directly: ``open`` for writing returns a StagingFile (tmp/);
- MKD creates missing parents and succeeds on an existing folder (cameras mirror card layouts);
- DELE/RMD only change the view: a photo once queued is never deleted by a camera;
- RNFR/RNTO is followed in the catalogue;
- every path, however written, is resolved (symlinks included) and must stay inside the jail.
"""

from __future__ import annotations

import errno
import os
import secrets
import unicodedata
from typing import TYPE_CHECKING, Any

from pyftpdlib.filesystems import AbstractedFS, FilesystemError

if TYPE_CHECKING:
    from appliance.ingest.landing import StagingFile


class JailFS(AbstractedFS):  # type: ignore[misc]
    def ftpnorm(self, ftppath: str) -> str:
        # NFC so that a name typed with combining characters is one name, not two look-alikes
        return str(super().ftpnorm(unicodedata.normalize("NFC", ftppath)))

    def validpath(self, path: str) -> bool:
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        return real == root or real.startswith(root + os.sep)

    def open(self, filename: str, mode: str) -> Any:
        if any(flag in mode for flag in "wa+"):
            return self._upload(filename, mode)
        return super().open(filename, mode)

    def mkstemp(self, suffix: str = "", prefix: str = "", dir: str | None = None, mode: str = "wb") -> Any:
        folder = dir or self.ftp2fs(self.cwd)
        for _ in range(100):
            candidate = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}{suffix}")
            if not os.path.lexists(candidate):
                return self._upload(candidate, "wb")
        raise OSError(errno.EEXIST, "No usable unique file name found")

    def mkdir(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def utime(self, path: str, timeval: float) -> None:
        # MFMT on a landed frame would change the stored photo (same inode): accept, change nothing
        if os.stat(path).st_mode & 0o200:
            super().utime(path, timeval)

    def rename(self, src: str, dst: str) -> None:
        super().rename(src, dst)
        self.cmd_channel.on_renamed(self.fs2ftp(src), self.fs2ftp(dst))

    def _upload(self, filename: str, mode: str) -> StagingFile:
        if not self.validpath(filename):
            raise FilesystemError("Path outside your folder.")
        return self.cmd_channel.open_upload(filename, mode)  # type: ignore[no-any-return]

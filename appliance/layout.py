"""Where things live inside the data folder. Pure paths; ``create()`` is the only I/O."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """``DATA/`` holds everything of one box; keep it on one filesystem so renames are atomic."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "shutterbox.db"

    @property
    def tmp(self) -> Path:
        """Uploads in flight, under random names; never visible to a camera."""
        return self.root / "tmp"

    @property
    def photos(self) -> Path:
        """The photo store: ``photos/<event>/<sha256[:2]>/<sha256><.ext>``, read-only files."""
        return self.root / "photos"

    @property
    def proxies(self) -> Path:
        """Searchable proxy JPEGs, ``proxies/<event>/<sha256>.jpg``: byte-exact for IndexFaces
        retries, read by the local face index, shown to guests as the full view."""
        return self.root / "proxies"

    @property
    def thumbs(self) -> Path:
        """Guest-page thumbnails, ``thumbs/<event>/<sha256>.jpg``: a cache, made on first view."""
        return self.root / "thumbs"

    @property
    def link_key(self) -> Path:
        """The secret that signs guests' photo links (32 random bytes, 0600)."""
        return self.root / "link.key"

    @property
    def ftp(self) -> Path:
        """One jail per upload key: what the camera sees (completed frames are hard links)."""
        return self.root / "ftp"

    @property
    def quarantine(self) -> Path:
        """Rejected uploads (truncated, corrupt), kept for the operator for a few days."""
        return self.root / "quarantine"

    @property
    def admin_token(self) -> Path:
        """SHA-256 of the admin API's bearer token for LAN clients (0600); absent: none set."""
        return self.root / "admin-token.sha256"

    @property
    def sync_paused(self) -> Path:
        """Present while the operator has paused cloud sync (so a pause survives a restart)."""
        return self.root / "sync.paused"

    @property
    def run(self) -> Path:
        """Runtime files: the control socket and ``box.json`` (pid and bound ports)."""
        return self.root / "run"

    @property
    def models(self) -> Path:
        """The face-recognition ResNet as ONNX, derived from the packaged dlib model (by SHA-256)."""
        return self.root / "models"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def control_socket(self) -> Path:
        return self.run / "control.sock"

    @property
    def box_json(self) -> Path:
        return self.run / "box.json"

    def create(self) -> None:
        for path in (self.root, self.tmp, self.photos, self.ftp, self.quarantine, self.run):
            path.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # the database holds secret hashes; photos are guests' privacy
        self.run.chmod(0o700)

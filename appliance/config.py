"""Settings of the box: TOML file ``DATA/shutterbox.toml`` overlaid by environment variables.

Pure data; built once by the composition root (``appliance.box``) or the CLI and handed down.
Environment variables are ``SHUTTERBOX_<SECTION>__<KEY>``, e.g. ``SHUTTERBOX_FTP__PORT=2121``.
Unknown keys anywhere are an error that names the key. Every field is documented in
``docs/configuration.md`` (a test fails when one is missing there).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from appliance import configerrors
from appliance.errors import ConfigError

CONFIG_FILE_NAME = "shutterbox.toml"
REKOGNITION_50_TPS_REGIONS = frozenset({"us-east-1", "us-west-2", "eu-west-1"})  # AWS's default quotas


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FtpSettings(_Section):
    """The camera-facing FTP/FTPS server."""

    host: str = "0.0.0.0"  # noqa: S104 - cameras reach the box over the venue LAN
    """Address the FTP listeners bind to."""
    port: int = Field(2121, ge=0, le=65535)
    """Plain FTP + explicit FTPS (AUTH TLS) port; 21 on the appliance image. 0 picks a free port."""
    implicit_tls_port: int | None = Field(None, ge=0, le=65535)
    """Implicit FTPS listener (TLS from the first byte); 990 on the appliance image. Unset: off."""
    passive_ports: str = "60000-60099"
    """Inclusive range for passive data connections, ``LOW-HIGH``. When every port in it is busy
    the server answers 425 instead of binding outside it. Size it to at least 2x the cameras."""
    masquerade_address: str | None = None
    """IPv4 address announced in PASV replies when the box sits behind NAT. Unset: the local one."""
    permit_foreign_addresses: bool = False
    """Accept a data connection from an IP other than the control connection's (FXP, odd NAT)."""
    tls_required: bool = False
    """Refuse USER/PASS before AUTH TLS (plain FTP off). Sony bodies always use FTPS."""
    max_connections: int = Field(256, ge=1)
    """Maximum simultaneous control connections."""
    max_connections_per_ip: int = Field(16, ge=1)
    """Maximum simultaneous control connections from one IP address."""
    max_sessions_per_key: int = Field(8, ge=1)
    """Maximum simultaneous logged-in sessions per upload key."""
    max_prelogin_connections: int = Field(32, ge=1)
    """Control connections that have not logged in yet, over all addresses. When they are all
    taken, a new connection closes the oldest one of the address holding the most, so a
    camera that connects and logs in always gets through."""
    max_prelogin_connections_per_ip: int = Field(8, ge=1)
    """Control connections one address may hold before logging in; one more gets 421. Room for
    the cameras behind one NAT router reconnecting at once, a quarter of the default pool."""
    login_timeout: int = Field(20, ge=1)
    """Seconds a connection has from connect to a successful login; then it gets 421 and is
    closed, whatever it sent meanwhile (NOOP does not extend it)."""
    idle_timeout: int = Field(600, ge=10)
    """Seconds a control connection may sit idle before it is closed."""
    data_timeout: int = Field(60, ge=5)
    """Seconds a data transfer may stall with no bytes before it is aborted."""
    drain_seconds: float = Field(20.0, ge=0)
    """On shutdown (SIGTERM), how long uploads already running may take to finish and get their
    226; new logins and transfers are refused with 421 meanwhile."""
    max_file_size_mb: int = Field(4096, ge=1)
    """Largest single upload accepted, in MB; a larger one is refused with 552."""
    ban_threshold: int = Field(10, ge=1)
    """Failed-login score at which an IP address is banned (a failed login scores 1,
    a login with an unknown user 2)."""
    ban_window: int = Field(300, ge=1)
    """Seconds over which failed-login scores add up."""
    ban_time: int = Field(60, ge=1)
    """First ban duration in seconds; each further ban of the same IP doubles it."""
    ban_time_max: int = Field(86400, ge=1)
    """Longest ban in seconds."""

    @field_validator("passive_ports")
    @classmethod
    def _check_range(cls, value: str) -> str:
        parse_port_range(value)
        return value

    @field_validator("masquerade_address")
    @classmethod
    def _check_ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.IPv4Address(value)
        return value

    @property
    def passive_range(self) -> range:
        return parse_port_range(self.passive_ports)


class TlsSettings(_Section):
    """Certificates for FTPS. By default the box makes its own CA on first start."""

    cert_file: Path | None = None
    """Operator-supplied server certificate chain (PEM). Unset: the box's own, signed by its CA."""
    key_file: Path | None = None
    """Private key (PEM) for ``cert_file``."""
    hostnames: list[str] = Field(default_factory=lambda: ["shutterbox.local", "shutterbox"])
    """Names put in the generated server certificate (the box's IP addresses are added)."""


class WebSettings(_Section):
    """The HTTP listener on the venue LAN."""

    host: str = "0.0.0.0"  # noqa: S104 - guests reach the box over the venue LAN
    """Address the web server binds to."""
    port: int = Field(8080, ge=0, le=65535)
    """Web port; 80 on the appliance image. 0 picks a free port."""
    max_connections: int = Field(256, ge=1)
    """Open connections the guest listener holds at once; one more is answered 503 and closed at
    once, so idle sockets can never use up the box's file handles (FTP needs them)."""
    max_connections_per_ip: int = Field(24, ge=1)
    """Open connections from one address (a phone opens about 6; a host's laptop a few more)."""
    header_timeout: float = Field(10.0, gt=0)
    """Seconds a client has to send a request's headers, counted from the connection (or the end
    of the previous response): a slowloris client is closed, not waited for."""
    body_timeout: float = Field(120.0, gt=0)
    """Seconds a client has to send a request's body once its headers arrived (a 20 MB selfie
    needs about 20 s on 10 Mbit/s WiFi)."""
    max_searches: int = Field(4, ge=1)
    """Selfie searches read and decoded at once; more wait in line up to ``search_wait`` seconds
    and then get a friendly "busy, try again in a few seconds" (bounds the box's memory)."""
    search_memory_mb: int = Field(40, ge=1)
    """Megabytes of selfies (by their declared size) read and searched at once: two 20 MB
    pictures, or many ordinary ones of a few MB. A selfie costs about three times its size in
    memory on its way to the selfie process."""
    search_wait: float = Field(15.0, ge=0)
    """Seconds a selfie search waits for a free place before it is told the box is busy."""


class AdminSettings(_Section):
    """The admin API over HTTP (the CLI and console use the unix socket ``run/control.sock``)."""

    host: str = "127.0.0.1"
    """Address of the admin listener. Every client needs the bearer token, loopback included
    (``shutterbox admin-token rotate``): another account on the box is not the operator. To let
    the cloud backend or a Prometheus scraper in from the LAN, bind ``0.0.0.0``."""
    port: int | None = Field(8081, ge=0, le=65535)
    """Admin port; 0 picks a free port; unset (``none`` in the environment): no HTTP listener."""


class AlertSettings(_Section):
    """When the console's alert line (and ``/api/status`` ``alerts``) asks for a human."""

    camera_silent_minutes: float = Field(10.0, gt=0)
    """A camera that sent frames in the last two hours but none for this long."""
    uplink_down_minutes: float = Field(10.0, gt=0)
    """The uplink offline for this long (only with cloud sync on)."""
    disk_warning_mb: int = Field(1024, ge=0)
    """Warn when free space is less than this above ``storage.reserve_mb``."""


class StorageSettings(_Section):
    """Where frames land and how much disk is kept free."""

    reserve_mb: int = Field(512, ge=0)
    """Free space always kept on the data disk. Below it, new uploads are refused with 452
    before any byte is accepted."""
    quarantine_days: int = Field(7, ge=0)
    """Days a rejected (truncated or corrupt) upload is kept for the operator to inspect."""
    partial_hours: int = Field(24, ge=0)
    """Hours an interrupted upload is kept so the camera can resume it (REST/APPE)."""
    evict_below_mb: int = Field(2048, ge=0)
    """When free space falls below this, originals already safely in S3 are deleted from the
    box, oldest first, until it is back above. Never an unsynced frame, never a proxy. 0: never."""

    @model_validator(mode="after")
    def _evict_above_reserve(self) -> StorageSettings:
        if self.evict_below_mb and self.evict_below_mb <= self.reserve_mb:
            raise ValueError("storage.evict_below_mb must be above storage.reserve_mb (or 0 to never evict)")
        return self


class HotFolderSettings(_Section):
    """A folder fed by tethering software or a card reader, ingested like an FTP upload."""

    path: Path | None = None
    """Folder to watch (recursively). Unset: off."""
    event: str | None = None
    """Event code the folder's frames belong to (required when ``path`` is set)."""
    function: str = "main"
    """Function (part of the event) the frames are filed under."""
    camera: str = "hotfolder"
    """Camera label for the frames."""
    settle_seconds: float = Field(2.0, gt=0)
    """A file is taken once its size and mtime have not changed for this long."""

    @model_validator(mode="after")
    def _needs_event(self) -> HotFolderSettings:
        if self.path is not None and self.event is None:
            raise ValueError("hotfolder.path is set but hotfolder.event is not")
        return self


class CloudSettings(_Section):
    """S3 and Rekognition. Unset ``bucket``: the box runs fully offline and syncs nothing."""

    bucket: str | None = None
    """S3 bucket for proxies and originals. Unset: cloud sync off."""
    region: str = "us-east-1"
    """AWS region of the bucket and of Rekognition."""
    prefix: str = Field("events", pattern=r"^[A-Za-z0-9_.\-/]{1,64}$")
    """Key prefix: objects go to ``<prefix>/<event>/<function>/<camera>/...``."""
    s3_endpoint_url: str | None = None
    """Another S3 endpoint (an S3-compatible store, or a test server). Unset: AWS."""
    rekognition_endpoint_url: str | None = None
    """Another Rekognition endpoint (a test server). Unset: AWS."""
    access_key_id: str | None = None
    """AWS access key id. Unset: the standard credential chain (environment, ~/.aws, instance role)."""
    secret_access_key: SecretStr | None = None
    """AWS secret access key for ``access_key_id``. Never logged."""
    index_faces: bool = True
    """Index every proxy in the event's Rekognition collection (billed per call)."""
    rekognition_tps: float | None = Field(None, gt=0)
    """Account-wide Rekognition calls per second shared by all workers. Unset: AWS's default quota
    for ``region`` (50 in us-east-1, us-west-2 and eu-west-1, 5 elsewhere)."""
    index_from_s3: bool = True
    """IndexFaces reads the proxy from the bucket (S3Object) instead of being sent its bytes again:
    half the uplink bytes per photo. Needs the bucket in Rekognition's region; set false for an
    S3-compatible store outside AWS."""
    quality_filter: str = Field("AUTO", pattern="^(NONE|AUTO|LOW|MEDIUM|HIGH)$")
    """IndexFaces QualityFilter."""
    max_faces: int = Field(100, ge=1, le=100)
    """IndexFaces MaxFaces: the largest faces kept per photo."""
    upload_mbit: float | None = Field(20.0, gt=0)
    """Upload bandwidth cap in Mbit/s for all sync traffic, so guests keep their WiFi. Unset: none."""
    workers: int = Field(16, ge=1, le=32)
    """Sync jobs in flight at once. A job is mostly round trips (HEAD, PUT, IndexFaces: ~1 s on a
    150 ms path), so it takes about ten at once to keep a 10 Mbit/s link busy; originals go one
    at a time whatever this says."""
    proxy_long_edge: int = Field(2048, ge=256, le=8192)
    """Long edge of the searchable proxy JPEG, in pixels: the local face index reads it, and it is
    the largest the cloud gets (the cloud proxy is sized to the measured uplink, never smaller
    than keeps the smallest face ``faces.min_face_px`` finds at 40 px)."""
    search_similarity: float = Field(90.0, ge=50, le=100)
    """SearchFacesByImage FaceMatchThreshold for guests' cloud searches (Rekognition similarity, %)."""
    multipart_threshold_mb: int = Field(16, ge=5)
    """Files larger than this go to S3 in parts that survive a dropout or reboot."""
    part_size_mb: int = Field(8, ge=5)
    """Size of each multipart part (S3's minimum is 5 MB)."""

    @property
    def rekognition_rate(self) -> float:
        """``rekognition_tps``, or AWS's default IndexFaces quota in ``region`` when unset."""
        if self.rekognition_tps is not None:
            return self.rekognition_tps
        return 50.0 if self.region in REKOGNITION_50_TPS_REGIONS else 5.0


class MdnsSettings(_Section):
    """mDNS advertising, so cameras and phones find the box by name."""

    enabled: bool = True
    """Advertise ``_ftp._tcp`` (cameras) and ``_http._tcp`` (guest page) on the LAN."""
    name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    """Host label advertised as ``<name>.local``. Unset: this machine's host name (unique per box
    from its first boot)."""
    interfaces: list[str] = Field(default_factory=list)
    """IPv4 addresses to advertise and listen on. Empty: every interface."""

    @field_validator("interfaces")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            ipaddress.IPv4Address(address)
        return value


class FacesSettings(_Section):
    """The local face index guests search on the venue LAN (works with the uplink down)."""

    enabled: bool = True
    """Find and embed faces on the box. Off: guest search uses Rekognition only."""
    workers: int | None = Field(None, ge=1, le=8)
    """Photos indexed at once (low priority, ~50 MB more per photo in flight): one on a
    background thread of the selfie process, the others on threads of one indexing process.
    Unset: one per CPU core, at most 4."""
    match_threshold: float = Field(0.5, gt=0, lt=1.2)
    """Largest embedding distance counted as the same person. Lower: fewer wrong photos,
    more missed ones (docs/faces.md has the measurements)."""
    min_face_px: int = Field(60, ge=20)
    """Faces narrower than this in the proxy are recorded but never matched: the margin to the
    nearest impostor shrinks with size. 60 keeps every face HOG finds at upsample 0 (its
    smallest box is 73 px); faces under 120 px are cut from the original's pixels, which is
    what makes them safe to search (docs/faces.md)."""
    upsample: int = Field(0, ge=0, le=2)
    """Detector upsampling: each step finds faces half as small at four times the CPU cost."""
    scan: Literal["regions", "full"] = "regions"
    """Where HOG looks in a photo being indexed and in a selfie. ``regions``: only around the
    faces a small proposal network (CenterFace, at 512 px, 320 for a selfie) sees, with the
    very boxes the full scan gives there: about half the detection time. ``full``: the whole
    picture. With ``upsample`` above 0 the scan is full (docs/faces.md)."""
    nice: int = Field(10, ge=0, le=19)
    """CPU niceness of indexing processes, so FTP and guest pages keep priority."""
    photo_timeout: float = Field(120.0, ge=5)
    """Seconds one photo may take in the indexing process (a 24 MP frame takes under 1 s on a
    core). Past it the process is taken as hung: it is killed and replaced, and the photo is
    tried again alone; one that hangs it twice is recorded as not indexed."""


class GuestSettings(_Section):
    """The guest pages: selfie search, photo links and downloads."""

    public_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(:\d+)?/?$")
    """Base URL guests reach the box at, for QR codes and links (e.g. ``http://photos.local``).
    Unset: the name the guest typed when it is one of the box's own (its hostname, ``.local``
    name, ``tls.hostnames``), else the address the guest's connection reached; never an untrusted
    ``Host``. Where no guest request says (the CLI, the table card, the start banner):
    ``http://<mdns name>.local[:<web.port>]`` while mDNS is on, else the box's LAN address."""
    wifi_name: str | None = Field(None, min_length=1, max_length=64)
    """The venue WiFi guests join to reach the box, printed on the table card
    (``shutterbox event guest CODE --out card.pdf``). Unset: the card leaves the WiFi out."""
    link_hours: int = Field(48, ge=1, le=24 * 30)
    """Photo, thumbnail and ZIP links stay valid at least this long (they expire at a day boundary
    so that browsers can cache thumbnails)."""
    searches_per_minute: int = Field(12, ge=1)
    """Selfie searches one client (IP address) may make per minute."""
    code_attempts_per_hour: int = Field(30, ge=1)
    """Unknown event codes, wrong PINs and bad links one client may try per hour before it is
    refused for the rest of the hour."""
    max_selfie_mb: int = Field(20, ge=1, le=100)
    """Largest selfie upload accepted."""
    cloud_timeout: float = Field(2.0, gt=0)
    """Seconds a guest search waits for Rekognition before answering from the local index."""
    consent_text: str = (
        "Your selfie is used only to find the photos you are in, then discarded: it is never saved."
    )
    """What the page tells guests is done with their selfie."""
    consent_required: bool = True
    """Guests tick a consent box (what is compared, that nothing is kept) before their first
    selfie, and the box refuses a page search without it. Required where biometric laws apply
    (GDPR, BIPA); turn it off only where none does."""
    live_hours: float = Field(2.0, ge=0, le=24)
    """How long an open results page keeps finding new photos of a guest who ticked "keep
    looking": the selfie's face description is held in memory only, for this long (0: never)."""
    live_watchers_per_event: int = Field(200, ge=1)
    """Guests of one event whose new photos are looked for at once (more: their results do not
    update live, and the page says so)."""
    live_watchers: int = Field(1000, ge=1)
    """Guests of all events whose new photos are looked for at once."""


class Settings(BaseSettings):
    """All settings of one box."""

    model_config = SettingsConfigDict(
        env_prefix="SHUTTERBOX_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    ftp: FtpSettings = Field(default_factory=FtpSettings)
    """Camera-facing FTP/FTPS server."""
    tls: TlsSettings = Field(default_factory=TlsSettings)
    """FTPS certificates."""
    web: WebSettings = Field(default_factory=WebSettings)
    """HTTP listener."""
    storage: StorageSettings = Field(default_factory=StorageSettings)
    """Disk use."""
    hotfolder: HotFolderSettings = Field(default_factory=HotFolderSettings)
    """Hot-folder ingest."""
    cloud: CloudSettings = Field(default_factory=CloudSettings)
    """Cloud sync (S3, Rekognition); off unless a bucket is set."""
    faces: FacesSettings = Field(default_factory=FacesSettings)
    """Local face index."""
    mdns: MdnsSettings = Field(default_factory=MdnsSettings)
    """mDNS advertising."""
    admin: AdminSettings = Field(default_factory=AdminSettings)
    """The admin API listener."""
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    """Alert thresholds."""
    guest: GuestSettings = Field(default_factory=GuestSettings)
    """Guest pages."""
    heartbeat_max_age: float = Field(30.0, ge=1)
    """Seconds a part of the box (an FTP listener, the database writer, the web server, the selfie
    process, the cloud monitor) may go without a heartbeat before the systemd watchdog pings stop
    and systemd restarts the box."""
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    """Logging level (logs go to stderr, for journald). DEBUG adds every FTP command."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the TOML file, which is passed as init values.
        return (env_settings, init_settings)


def parse_port_range(text: str) -> range:
    """``"60000-60099"`` -> range(60000, 60100); raises ValueError on nonsense."""
    low_text, sep, high_text = text.partition("-")
    if not sep:
        raise ValueError(f"port range {text!r} must look like LOW-HIGH")
    low, high = int(low_text), int(high_text)
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"port range {text!r} must satisfy 1 <= LOW <= HIGH <= 65535")
    return range(low, high + 1)


# Variables with our prefix that are not settings: read by the CLI itself.
_NOT_SETTINGS = {"SHUTTERBOX_DATA"}


def _check_environment() -> None:
    """pydantic-settings ignores unknown top-level variables; a typo must not pass silently."""
    known = {name.upper() for name in Settings.model_fields}
    for name in os.environ:
        upper = name.upper()
        if not upper.startswith("SHUTTERBOX_") or upper in _NOT_SETTINGS:
            continue
        field = upper.removeprefix("SHUTTERBOX_").split("__", 1)[0]
        if field not in known:
            problem = configerrors.unknown(Settings, [field.lower()], f"variable {name}")
            raise ConfigError(configerrors.message([problem]))


def load_settings(data_dir: Path) -> Settings:
    """Read ``DATA/shutterbox.toml`` (optional) and the environment; raise ConfigError on any
    unknown key or bad value, naming it."""
    path = data_dir / CONFIG_FILE_NAME
    _check_environment()
    values: dict[str, Any] = {}
    text: str | None = None
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            values = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    try:
        return Settings(**values)
    except ValidationError as exc:
        sources = configerrors.Sources(path, text, os.environ)
        raise ConfigError(configerrors.explain(exc, Settings, sources)) from exc

"""Pieces of ``bench/soak.py``: emulated cameras speaking the dialogues of FIELD-NOTES section 2.

One thread per camera body. It shoots by the clock onto its "card" (a queue of files: a JPEG, or
a RAW+JPEG pair) and uploads the card in order over its own upload key, like a transmitter:

- Canon: plain FTP, probes with MKD + RMD of a test folder after login, mirrors the card layout
  one MKD level at a time, keeps its session, resumes a cut file with REST + STOR;
- Nikon: plain FTP, one nested MKD ("make folders"), drops its session without QUIT when the
  meter sleeps (idle) and now and then after a file, so many short sessions; resumes with APPE;
- Sony: explicit FTPS (AUTH TLS, PBSZ 0, PROT P) trusting the box's CA, card layout, resumes
  with REST + STOR, and sometimes loses its control connection (RST, no QUIT).

Faults on the camera side come from a shared ``CutPlan``: the next upload of a camera that takes a
request is cut partway by a FIN, an RST or (FTPS) a TLS close without close-notify; the camera
then asks SIZE and resumes from there when the box kept no more than it sent, else sends the file
again. Whatever goes wrong (the box killed, 421 while it restarts, 452 at the disk reserve), the
camera reconnects with backoff and sends the file again until it gets "226": a file is
delivered only by a 226, and every 226 is recorded with the frame's SHA-256 (the ground truth).
"""

from __future__ import annotations

import contextlib
import ftplib
import random
import re
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from _common import FTP_ERRORS
from _soak_corpus import RAW_EXT, frame_of
from _sync_helpers import Base, Frame

FTP_TIMEOUT_S = 30.0
BLOCK = 256 * 1024
_PHOTO_ID = re.compile(r"stored as photo (\d+)")


@dataclass(frozen=True)
class Dialogue:
    tls: bool
    resume: str  # "REST" (REST + STOR) or "APPE"
    folder: str
    per_level: bool  # MKD one level at a time (card layout) or one nested MKD
    probe: bool  # MKD + RMD of a test folder after login (Canon)
    drop_after_file: float  # chance to end the session without QUIT after a file
    drop_when_idle: bool  # end the session without QUIT when nothing is waiting (meter sleep)
    wrap: int  # the file counter runs 1..wrap


DIALOGUES = {
    "canon": Dialogue(False, "REST", "DCIM/100EOSR5", True, True, 0.0, False, 9999),
    "nikon": Dialogue(False, "APPE", "NIKON/DCIM/100NCZ_9", False, False, 0.15, True, 9999),
    "sony": Dialogue(True, "REST", "DCIM/100MSDCF", True, False, 0.03, False, 99999),
}


@dataclass(frozen=True)
class CameraSpec:
    name: str  # the upload key's camera label
    brand: str  # canon, nikon or sony
    event: str  # which of the soak's events: "A" or "B"
    raw_every: int  # a RAW+JPEG pair every n-th shot (0: JPEG only)
    counter: int  # the first file number

    @property
    def dialogue(self) -> Dialogue:
        return DIALOGUES[self.brand]

    def names(self, shot: int) -> tuple[str, str | None]:
        number = (self.counter - 1 + shot) % self.dialogue.wrap + 1
        stem = {"canon": f"IMG_{number:04d}", "nikon": f"DSC_{number:04d}", "sony": f"DSC{number:05d}"}
        raw = (
            f"{stem[self.brand]}{RAW_EXT[self.brand]}"
            if self.raw_every and shot % self.raw_every == 0
            else None
        )
        return f"{stem[self.brand]}.JPG", raw


# Two Canon bodies in event A share file names (and the counter rolls over at 9999 early on);
# the Canon and Nikon bodies of event B reuse event A's names too.
DEFAULT_CAMERAS = (
    CameraSpec("r5-a", "canon", "A", 3, 9990),
    CameraSpec("r5-b", "canon", "A", 0, 9990),
    CameraSpec("z9-a", "nikon", "A", 1, 1),
    CameraSpec("a1", "sony", "B", 2, 1),
    CameraSpec("z9-b", "nikon", "B", 0, 1),
    CameraSpec("r3", "canon", "B", 0, 9990),
)


@dataclass
class Upload:
    """One file on a camera's card."""

    camera: str
    event: str  # event code
    username: str
    name: str
    kind: str  # "jpeg" or "raw"
    frame: Frame
    shot_at: float  # wall clock
    acked_at: float | None = None  # wall clock of the 226
    photo_id: int | None = None  # as the 226 named it
    tries: int = 0
    sent: int = 0  # bytes of the file that went out in a try that got no answer (0: start over)


@dataclass(frozen=True)
class Cut:
    camera: str
    username: str
    name: str
    how: str  # fin, rst or tls
    sent: int
    size: int
    reply: str  # the box's answer, or what the camera saw instead
    acked: bool  # the box answered 226 for a cut file: a bug


@dataclass(frozen=True)
class Resume:
    camera: str
    name: str
    verb: str
    after: str  # "cut" (the camera's own cut) or "failure" (the box killed, the session dropped)
    offset: int
    ok: bool
    reply: str


@dataclass
class CameraLog:
    uploads: list[Upload] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)
    resumes: list[Resume] = field(default_factory=list)
    sessions: int = 0
    without_quit: int = 0
    refused_disk: int = 0  # 452 at the disk reserve
    connect_errors: int = 0
    transfer_errors: int = 0  # the box went away mid-transfer, 421 while it restarted, ...
    dialogue_errors: list[str] = field(default_factory=list)  # 5xx to a dialogue command
    unexpected: list[str] = field(default_factory=list)  # a whole file answered 426, 451 or 5xx
    samples: list[str] = field(default_factory=list)  # a few transfer errors, for the report


class CutPlan:
    """Cuts requested by the fault timeline; the next camera able to do one takes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self.requested: dict[str, int] = {}

    def request(self, how: str) -> None:
        with self._lock:
            self._pending.append(how)
            self.requested[how] = self.requested.get(how, 0) + 1

    def give_back(self, how: str) -> None:
        """A cut that could not start (the STOR was refused, the box went away): next in line."""
        with self._lock:
            self._pending.insert(0, how)

    def take(self, tls: bool) -> str | None:
        with self._lock:
            for i, how in enumerate(self._pending):
                if how != "tls" or tls:
                    return self._pending.pop(i)
        return None

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


class Camera(threading.Thread):
    def __init__(
        self,
        spec: CameraSpec,
        index: int,
        *,
        event: str,
        key: tuple[str, str],
        port: int,
        jpegs: Sequence[Base],
        raw: Base | None,
        schedule: Sequence[float],
        cuts: CutPlan,
        give_up: threading.Event,
        run_id: str,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(name=f"camera-{spec.name}", daemon=True)
        self.spec, self.index, self.event, self.port = spec, index, event, port
        self.user, self.password = key
        self.jpegs, self.raw = jpegs, raw
        self.schedule = list(schedule)  # monotonic shutter times
        self.cuts, self.give_up, self.run_id, self.tls_context = cuts, give_up, run_id, tls_context
        self.log = CameraLog()
        self.card: deque[Upload] = deque()
        self.shots = 0
        self.rng = random.Random(f"{run_id}-{spec.name}")
        self.ftp: ftplib.FTP | None = None

    @property
    def done(self) -> bool:
        return self.shots >= len(self.schedule) and not self.card

    # --- the loop

    def run(self) -> None:
        backoff = 0.5
        try:
            while not self.give_up.is_set():
                self._shoot_due()
                if not self.card:
                    if self.shots >= len(self.schedule):
                        break
                    self._idle(self.schedule[self.shots] - time.monotonic())
                    continue
                if self.ftp is None:
                    try:
                        self._open()
                    except FTP_ERRORS as exc:
                        self.log.connect_errors += 1
                        self._note(f"connect: {exc!r}")
                        self._drop(reset=False)
                        self.give_up.wait(backoff)
                        backoff = min(5.0, backoff * 2)
                        continue
                    backoff = 0.5
                if self._attempt(self.card[0]):
                    self.card.popleft()
                    if self.rng.random() < self.spec.dialogue.drop_after_file:
                        self._drop(reset=self.spec.dialogue.tls)
                        self.log.without_quit += 1
        finally:
            self._finish()

    def _attempt(self, upload: Upload) -> bool:
        """One try at a file; True once the box answered 226."""
        try:
            return self._deliver(upload)
        except ftplib.error_temp as exc:
            code = str(exc)[:3]
            if code == "452":
                self.log.refused_disk += 1
                self.give_up.wait(2.0)  # the box is at its disk reserve: wait, try again
                return False
            self.log.transfer_errors += 1
            self._note(f"{upload.name}: {exc}")
            if code in ("426", "451"):  # a whole file refused as cut or corrupt, or lost by the box
                self.log.unexpected.append(f"{self.spec.name} {upload.name}: {exc}")
            if code == "421":
                self._drop(reset=False)
            self.give_up.wait(0.5)
        except ftplib.error_perm as exc:
            self.log.unexpected.append(f"{self.spec.name} {upload.name}: {exc}")
            self._drop(reset=False)
            self.give_up.wait(2.0)
        except FTP_ERRORS as exc:
            self.log.transfer_errors += 1
            self._note(f"{upload.name}: {exc!r}")
            self._drop(reset=False)
            self.give_up.wait(0.5)
        return False

    def _note(self, text: str) -> None:
        if len(self.log.samples) < 20:
            self.log.samples.append(f"{time.strftime('%H:%M:%S')} {self.spec.name} {text}")

    def _shoot_due(self) -> None:
        now = time.monotonic()
        while self.shots < len(self.schedule) and self.schedule[self.shots] <= now:
            k = self.shots
            jpeg_name, raw_name = self.spec.names(k)
            label = f"SBSOAK {self.run_id} {self.spec.name} {k:06d}"
            base = self.jpegs[self.rng.randrange(len(self.jpegs))]
            files = [(jpeg_name, "jpeg", frame_of(k, self.index, jpeg_name, base, label + " J", raw=False))]
            if raw_name is not None and self.raw is not None:
                files.append(
                    (raw_name, "raw", frame_of(k, self.index, raw_name, self.raw, label + " R", True))
                )
            for name, kind, frame in files:
                upload = Upload(self.spec.name, self.event, self.user, name, kind, frame, time.time())
                self.log.uploads.append(upload)
                self.card.append(upload)
            self.shots += 1

    def _idle(self, wait: float) -> None:
        if self.ftp is not None and self.spec.dialogue.drop_when_idle and wait > 1.5:
            self._drop(reset=False)  # the meter sleeps: the transmitter just goes away
            self.log.without_quit += 1
        self.give_up.wait(max(0.01, min(wait, 0.5)))

    # --- sessions

    def _open(self) -> None:
        dialogue = self.spec.dialogue
        if dialogue.tls:
            ftp: ftplib.FTP = ftplib.FTP_TLS(context=self.tls_context, timeout=FTP_TIMEOUT_S)
        else:
            ftp = ftplib.FTP(timeout=FTP_TIMEOUT_S)
        self.ftp = ftp
        ftp.connect("127.0.0.1", self.port)
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.auth()
            ftp.login(self.user, self.password)
            ftp.prot_p()  # PBSZ 0, then PROT P
        else:
            ftp.login(self.user, self.password)
        self.log.sessions += 1
        ftp.voidcmd("TYPE I")
        if dialogue.probe:
            probe = f"EOS{self.rng.randrange(10**6):06d}"
            self._say(ftp.mkd, probe)
            self._say(ftp.rmd, probe)
        levels = dialogue.folder.split("/") if dialogue.per_level else [dialogue.folder]
        for level in levels:
            self._say(ftp.mkd, level)
            self._say(ftp.cwd, level)

    def _say(self, command: Callable[[str], object], arg: str) -> None:
        try:
            command(arg)
        except ftplib.error_perm as exc:
            self.log.dialogue_errors.append(f"{self.spec.name} {command.__name__} {arg}: {exc}")
            raise

    def _drop(self, *, reset: bool) -> None:
        """End the session without QUIT (FIN, or RST when the WiFi just vanished)."""
        ftp, self.ftp = self.ftp, None
        if ftp is None:
            return
        if reset and ftp.sock is not None:
            with contextlib.suppress(OSError):
                ftp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            ftp.close()

    def _finish(self) -> None:
        if self.ftp is None:
            return
        if self.spec.brand == "nikon":
            self._drop(reset=False)
            self.log.without_quit += 1
            return
        with contextlib.suppress(*ftplib.all_errors, EOFError):
            self.ftp.quit()
        self._drop(reset=False)

    # --- transfers

    def _deliver(self, upload: Upload) -> bool:
        assert self.ftp is not None
        upload.tries += 1
        data = upload.frame.data()
        if upload.sent:  # an earlier try died partway (the box was killed, the session dropped)
            return self._resume(upload, data, upload.sent, after="failure")
        how = self.cuts.take(self.spec.dialogue.tls)
        if how is None:
            return self._acked(upload, self._store(upload, data, 0))
        if how == "drop":
            upload.sent = self._drop_midway(upload.name, data)
            self.log.cuts.append(
                Cut(self.spec.name, self.user, upload.name, how, upload.sent, len(data), "", False)
            )
            return False  # the next try logs in again and resumes
        sent, reply = self._cut(upload.name, data, how)
        acked = reply.startswith("226")
        self.log.cuts.append(Cut(self.spec.name, self.user, upload.name, how, sent, len(data), reply, acked))
        if acked:  # the box acknowledged a truncated file: the camera believes it delivered
            return self._acked(upload, reply)
        return self._resume(upload, data, sent, after="cut")

    def _acked(self, upload: Upload, reply: str) -> bool:
        if not reply.startswith("226"):
            raise ftplib.error_reply(reply)
        upload.acked_at = time.time()
        upload.sent = 0
        found = _PHOTO_ID.search(reply)
        upload.photo_id = int(found.group(1)) if found else None
        return True

    def _store(self, upload: Upload, data: bytes, offset: int, verb: str = "STOR") -> str:
        """STOR (from ``offset`` with REST) or APPE the rest of ``data``; ``upload.sent`` follows
        how far the file got, so that a try that dies partway can be resumed."""
        assert self.ftp is not None
        self.ftp.voidcmd("TYPE I")
        rest = offset if verb == "STOR" and offset else None
        view = memoryview(data)
        with self.ftp.transfercmd(f"{verb} {upload.name}", rest) as conn:
            for start in range(offset, len(data), BLOCK):
                conn.sendall(view[start : start + BLOCK])
                upload.sent = max(upload.sent, min(len(data), start + BLOCK))
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()
        return self.ftp.voidresp()

    def _start_cut(self, name: str, how: str) -> socket.socket:
        """The data connection of a transfer that is to be cut; if even that fails, the cut
        request goes back to the plan."""
        assert self.ftp is not None
        try:
            self.ftp.voidcmd("TYPE I")
            return self.ftp.transfercmd(f"STOR {name}")
        except BaseException:
            self.cuts.give_back(how)
            raise

    def _cut(self, name: str, data: bytes, how: str) -> tuple[int, str]:
        """Send part of ``data`` and end the data connection as ``how`` says; the box's reply."""
        assert self.ftp is not None
        cut_at = max(1, int(len(data) * self.rng.uniform(0.2, 0.8)))
        conn = self._start_cut(name, how)
        try:
            conn.sendall(memoryview(data)[:cut_at])
            if how == "rst":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif how == "tls":
                conn.shutdown(socket.SHUT_RDWR)  # SSLSocket.shutdown: no close-notify, just TCP
            elif isinstance(conn, ssl.SSLSocket):
                conn.unwrap()  # a clean TLS close, then FIN: a short file that looks finished
        finally:
            conn.close()
        try:
            return cut_at, self.ftp.voidresp()
        except ftplib.Error as exc:
            return cut_at, str(exc)

    def _drop_midway(self, name: str, data: bytes) -> int:
        """The WiFi goes mid-file: both the data and the control connection are reset."""
        cut_at = max(1, int(len(data) * self.rng.uniform(0.2, 0.8)))
        conn = self._start_cut(name, "drop")
        try:
            conn.sendall(memoryview(data)[:cut_at])
            time.sleep(0.2)  # the bytes reach the box before the session goes
            self._drop(reset=True)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            conn.close()
        self.log.without_quit += 1
        return cut_at

    def _resume(self, upload: Upload, data: bytes, sent: int, *, after: str) -> bool:
        """Resume from what the box kept when that is no more than was sent (a file of the same
        name could be an older frame), else send it all again."""
        assert self.ftp is not None
        try:
            kept = self.ftp.size(upload.name)
        except ftplib.error_perm:
            kept = None
        if not kept or kept > sent:
            upload.sent = 0
            return self._acked(upload, self._store(upload, data, 0))
        verb = self.spec.dialogue.resume
        try:
            reply = self._store(upload, data, kept, "APPE" if verb == "APPE" else "STOR")
        except FTP_ERRORS as exc:
            self.log.resumes.append(Resume(self.spec.name, upload.name, verb, after, kept, False, str(exc)))
            raise
        ok = reply.startswith("226")
        self.log.resumes.append(Resume(self.spec.name, upload.name, verb, after, kept, ok, reply))
        return self._acked(upload, reply)

"""The ``shutterbox`` command. Commands that change state talk to the running box over its
control socket (never to its database behind its back); read-only ``photos`` and ``status``
fall back to reading the database when the box is not running. Each command is one handler,
set on its subparser (``set_defaults(handler=...)``); those that talk to the box take the
control client (``appliance.control.client.ControlClient``). Runs on the main thread.

Exit codes: 0 ok, 1 the box refused the request, 2 usage (an output file of an unknown kind or
that cannot be written, too), 3 box not running, 4 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import segno

from appliance import __version__, process
from appliance.config import load_settings
from appliance.control.client import ApiError, ControlClient
from appliance.errors import ConfigError, NotFoundError, NotRunningError
from appliance.layout import Layout
from appliance.listings import (
    CAMERA_COLUMNS,
    CHECKLIST_COLUMNS,
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    KEY_COLUMNS,
    LEDGER_COLUMNS,
    PHOTO_COLUMNS,
    REJECTION_COLUMNS,
    STATUS_FIRST,
)
from appliance.loghygiene import escape_controls
from appliance.plaintext import Column, sections, table
from appliance.store.records import MODERATIONS, ORIGINALS_POLICIES

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_CONFIG = 0, 1, 2, 3, 4

Handler = Callable[[argparse.Namespace], int]
BoxHandler = Callable[[argparse.Namespace, ControlClient], int]


def _on_box(handler: BoxHandler) -> Handler:
    """A command that talks to the running box: ``handler(args, box)`` with the control client."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with ControlClient(args.data) as box:
            return handler(args, box)

    return run


def _parser() -> argparse.ArgumentParser:
    """Every command, each with its ``handler`` (``main`` calls ``args.handler(args)``)."""
    default_data = Path(os.environ.get("SHUTTERBOX_DATA", "./var"))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=default_data, help="data folder (default: %(default)s)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")

    parser = argparse.ArgumentParser(prog="shutterbox", description="Live event-photo box.")
    parser.add_argument("--version", action="version", version=f"shutterbox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("up", parents=[common], help="run the box").set_defaults(handler=_up)
    sub.add_parser(
        "check-config", parents=[common], help="validate shutterbox.toml and SHUTTERBOX_* variables"
    ).set_defaults(handler=_check_config)

    event = sub.add_parser("event", help="events").add_subparsers(dest="action", required=True)
    create = event.add_parser("create", parents=[common], help="create an event")
    create.add_argument("name")
    create.add_argument(
        "--function", action="append", dest="functions", help="a part of the event (repeatable)"
    )
    create.add_argument(
        "--originals",
        choices=ORIGINALS_POLICIES,
        default="all",
        help="which originals go to S3 (proxies always do when cloud sync is on)",
    )
    create.set_defaults(handler=_on_box(_event_create))
    event.add_parser("list", parents=[common], help="list events").set_defaults(handler=_on_box(_event_list))
    ep = event.add_parser(
        "purge", parents=[common], help="delete an event everywhere: S3, Rekognition, the box"
    )
    ep.add_argument("code")
    ep.add_argument("--yes", action="store_true", help="really delete (required)")
    ep.set_defaults(handler=_on_box(_event_purge))
    eo = event.add_parser("originals", parents=[common], help="change which originals of new photos go to S3")
    eo.add_argument("code")
    eo.add_argument("policy", choices=ORIGINALS_POLICIES)
    eo.set_defaults(handler=_on_box(_event_originals))
    ee = event.add_parser(
        "edit",
        parents=[common],
        help="change an event: name, moderation, face search, date, colour, cover; add a function",
    )
    ee.add_argument("code")
    ee.add_argument("--name")
    ee.add_argument(
        "--moderation",
        choices=MODERATIONS,
        help="open: guests see every photo at once; approve: only the photos the host approved",
    )
    ee.add_argument("--face-search", choices=("on", "off"), help="whether guests may search by selfie")
    ee.add_argument("--date", help="the event's day, yyyy-mm-dd ('none' clears it)")
    ee.add_argument("--accent", help="the guest pages' colour, #rrggbb ('none' clears it)")
    ee.add_argument(
        "--cover",
        type=_photo_id_or_none,
        default=_NO_COVER,
        help="the id of the photo on top of the guest pages ('none' clears it)",
    )
    ee.add_argument(
        "--add-function",
        action="append",
        dest="add_functions",
        metavar="NAME",
        help="declare a function of the event, for camera keys (repeatable)",
    )
    ee.set_defaults(handler=_on_box(_event_edit))

    key = sub.add_parser("key", help="camera upload keys").add_subparsers(dest="action", required=True)
    kc = key.add_parser("create", parents=[common], help="create a key; prints the password once")
    kc.add_argument("--event", required=True)
    kc.add_argument("--camera", required=True, help="a label for the body or transmitter")
    kc.add_argument(
        "--function",
        help="one of the event's functions (event list shows them); left out: the event's only one",
    )
    kc.set_defaults(handler=_on_box(_key_create))
    kr = key.add_parser("revoke", parents=[common], help="revoke a key and cut its sessions")
    kr.add_argument("username")
    kr.set_defaults(handler=_on_box(_key_revoke))
    kl = key.add_parser("list", parents=[common], help="list keys")
    kl.add_argument("--event")
    kl.set_defaults(handler=_on_box(_key_list))

    eg = event.add_parser(
        "guest", parents=[common], help="the guest page's address and its QR code, or its table card"
    )
    eg.add_argument("code")
    eg.add_argument(
        "--out", type=Path, help="write the event's table card (A6) to this .pdf, .svg or .png file"
    )
    eg.add_argument("--pin", help="the event's PIN, to print on the card (the box keeps only its hash)")
    eg.set_defaults(handler=_on_box(_event_guest))
    epin = event.add_parser("pin", parents=[common], help="set or clear the PIN guests type first")
    epin.add_argument("code")
    epin.add_argument("pin", help="4-32 letters or digits, or 'none' to clear")
    epin.set_defaults(handler=_on_box(_event_pin))
    eh = event.add_parser(
        "host-link", parents=[common], help="a private link to the whole event; prints it once"
    )
    eh.add_argument("code")
    eh.add_argument("--revoke", action="store_true", help="stop the current host link working")
    eh.set_defaults(handler=_on_box(_event_host_link))

    eq = event.add_parser("quota", parents=[common], help="set an event's Rekognition index quota")
    eq.add_argument("code")
    eq.add_argument("limit", type=_quota, help="photos to index at most, or 'none'")
    eq.set_defaults(handler=_on_box(_event_quota))

    dead = sub.add_parser("deadletters", parents=[common], help="sync jobs that failed for good")
    dead.set_defaults(handler=_on_box(_deadletters))
    dead_sub = dead.add_subparsers(dest="action")
    for verb in ("retry", "discard"):
        dv = dead_sub.add_parser(verb, parents=[common], help=f"{verb} a dead-lettered job")
        dv.add_argument("job_id", type=int)
        dv.set_defaults(handler=_on_box(_deadletter_act))
    ledger = sub.add_parser("ledger", parents=[common], help="every billable cloud call")
    ledger.add_argument("--event")
    ledger.set_defaults(handler=_on_box(_ledger))

    photos = sub.add_parser(
        "photos", parents=[common], help="list photos; approve, reject, hide or unhide some"
    )
    photos.add_argument("--event")
    photos.set_defaults(handler=_on_box(_photos))
    photo_sub = photos.add_subparsers(dest="action")
    for verb, words in MODERATE_VERBS.items():
        pv = photo_sub.add_parser(verb, parents=[common], help=f"{verb} photos of an event ({words})")
        pv.add_argument("code")
        pv.add_argument("ids", nargs="+", type=_photo_id, metavar="ID")
        pv.set_defaults(handler=_on_box(_photos_moderate))
    sub.add_parser(
        "doctor",
        parents=[common],
        help="check what commonly breaks at a venue: each check OK, WARN or FAIL and what to do",
    ).set_defaults(handler=_on_box(_doctor))
    sub.add_parser(
        "checklist",
        parents=[common],
        help="the event-day checklist, each line done or not yet as the running box sees it",
    ).set_defaults(handler=_on_box(_checklist))
    sub.add_parser("status", parents=[common], help="queue, FTP and disk status").set_defaults(
        handler=_on_box(_status)
    )
    sub.add_parser(
        "rejections", parents=[common], help="rejected (truncated or corrupt) uploads"
    ).set_defaults(handler=_on_box(_rejections))
    sub.add_parser(
        "ca-cert", parents=[common], help="print the box's CA certificate (PEM) for cameras"
    ).set_defaults(handler=_on_box(_ca_cert))
    sub.add_parser(
        "cameras", parents=[common], help="per camera key: connected, last frame, frames today, errors"
    ).set_defaults(handler=_on_box(_cameras))
    sync = sub.add_parser("sync", help="cloud sync").add_subparsers(dest="action", required=True)
    sync.add_parser("pause", parents=[common], help="pause cloud sync (kept across restarts)").set_defaults(
        handler=_on_box(_sync)
    )
    sync.add_parser("resume", parents=[common], help="resume cloud sync").set_defaults(handler=_on_box(_sync))
    token = sub.add_parser("admin-token", help="the admin API's bearer token for LAN clients").add_subparsers(
        dest="action", required=True
    )
    token.add_parser(
        "rotate", parents=[common], help="make a new token (the old one stops working); prints it once"
    ).set_defaults(handler=_admin_token)
    token.add_parser(
        "revoke", parents=[common], help="remove the token: LAN clients are refused"
    ).set_defaults(handler=_admin_token)
    sub.add_parser(
        "console", parents=[common], help="the operator console (Textual), for a screen or SSH"
    ).set_defaults(handler=_console)
    return parser


MODERATE_VERBS = {  # `photos <verb>`: what it does for guests
    "approve": "shown to guests of an event whose moderation is approve",
    "reject": "never shown to guests",
    "hide": "taken off the guest pages at once, whatever the decision",
    "unhide": "back as the decision says",
}
DONE = {"approve": "approved", "reject": "rejected", "hide": "hidden", "unhide": "unhidden"}
_NO_COVER = 0  # `event edit` without --cover (photo ids start at 1)


def _photo_id(text: str) -> int:
    if not (text.isascii() and text.isdecimal()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a photo id (a whole number, as `photos` lists)")
    return int(text)


def _photo_id_or_none(text: str) -> int | None:
    return None if text.lower() == "none" else _photo_id(text)


def _quota(text: str) -> int | None:
    """``event quota``'s limit: a whole number of photos, or ``none``."""
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of photos (or 'none' for no limit)")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"shutterbox: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_CONFIG
    except NotRunningError as exc:
        print(f"shutterbox: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_NOT_RUNNING
    except ApiError as exc:
        print(f"shutterbox: {exc} (HTTP {exc.status})", file=sys.stderr)  # noqa: T201
        return EXIT_REFUSED
    except NotFoundError as exc:
        print(f"shutterbox: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_REFUSED
    except BrokenPipeError:  # `shutterbox photos | head`
        sys.stderr.close()
        return EXIT_OK


# --- commands that run without the box's control socket


def _up(args: argparse.Namespace) -> int:
    from appliance.box import run_box  # only here: the console script stays import-light
    from appliance.loghygiene import LogHygiene

    data: Path = args.data
    settings = load_settings(data)
    process.huge_pages_for_children()  # before any thread: the face workers inherit it
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(LogHygiene())
    for library in ("httpx", "httpcore", "aiosqlite", "asyncio", "multipart", "python_multipart"):
        # their INFO/DEBUG is one line per request or query: the box's own health probes alone
        # would write one every two seconds
        logging.getLogger(library).setLevel("WARNING")
    if settings.log_level != "DEBUG":
        # pyftpdlib logs every FTP command at INFO: per-frame work under load, and wear on an SD
        # card through the journal. The box logs logins, session ends and every frame itself.
        logging.getLogger("pyftpdlib").setLevel("WARNING")
    try:
        return run_box(settings, data)
    except OSError as exc:  # a port in use, a read-only data folder: say it, no traceback
        logging.getLogger("appliance").error("cannot start: %s", exc)
        return EXIT_REFUSED


def _console(args: argparse.Namespace) -> int:
    from tui.app import run as run_console

    return run_console(args.data)


def _check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.data)
    _emit(args, settings.model_dump(mode="json"), "configuration OK")
    return EXIT_OK


# --- commands that talk to the running box


def _event_create(args: argparse.Namespace, box: ControlClient) -> int:
    body = {"name": args.name, "functions": args.functions or ["main"], "originals": args.originals}
    result = box.request("POST", "/api/events", json=body)
    _emit(args, result, f"created event {result['code']} ({result['name']})")
    return EXIT_OK


def _event_list(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("GET", "/api/events")
    _emit_table(args, result, EVENT_COLUMNS, "no events (make one with: shutterbox event create NAME)")
    return EXIT_OK


def _key_create(args: argparse.Namespace, box: ControlClient) -> int:
    body = {"event": args.event, "camera": args.camera}
    if args.function is not None:  # left out: the box takes the event's only function, or asks
        body["function"] = args.function
    result = box.request("POST", "/api/keys", json=body)
    c = result["connect"]
    _emit(
        args,
        result,
        f"key for {result['camera']} ({result['event']}/{result['function']})\n"
        f"  host {c['host']}  port {c['port']}  passive ports {c['passive_ports']}\n"
        f"  user {result['username']}\n  password {result['password']}   (shown once)",
    )
    return EXIT_OK


def _key_revoke(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("DELETE", f"/api/keys/{args.username}")
    _emit(args, result, f"revoked {result['username']} ({result['sessions_cut']} live sessions cut)")
    return EXIT_OK


def _key_list(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("GET", "/api/keys", params={"event": args.event} if args.event else None)
    empty = f"no camera keys for event {args.event}" if args.event else "no camera keys"
    _emit_table(args, result, KEY_COLUMNS, f"{empty} (make one with: shutterbox key create)")
    return EXIT_OK


def _event_purge(args: argparse.Namespace, box: ControlClient) -> int:
    if not args.yes:
        print(f"shutterbox: purge deletes event {args.code} everywhere; add --yes", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    result = box.request("DELETE", f"/api/events/{args.code}")
    _emit(
        args,
        result,
        f"purged {args.code}: {result['s3_objects_deleted']} S3 objects, collection deleted:"
        f" {result['collection_deleted']}, {result['local_files_removed']} local files",
    )
    return EXIT_OK


def _event_originals(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("PUT", f"/api/events/{args.code}/originals", json={"originals": args.policy})
    _emit(args, result, f"{args.code}: originals {result['originals_policy']} (for new photos)")
    return EXIT_OK


CARD_FORMATS = {".pdf": "pdf", ".svg": "svg", ".png": "png"}


def _event_edit(args: argparse.Namespace, box: ControlClient) -> int:
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.moderation is not None:
        body["moderation"] = args.moderation
    if args.face_search is not None:
        body["face_search"] = args.face_search == "on"
    for name in ("date", "accent"):
        value = getattr(args, name)
        if value is not None:
            body[name] = None if value.lower() == "none" else value
    if args.cover != _NO_COVER:
        body["cover_photo_id"] = args.cover
    if args.add_functions:
        body["add_functions"] = args.add_functions
    if not body:
        return _usage(
            "nothing to change: give --name, --moderation, --face-search, --date, --accent, --cover"
            " or --add-function"
        )
    e = box.request("PATCH", f"/api/events/{args.code}", json=body)
    look = ", ".join(
        [
            f"moderation {e['moderation']}",
            f"face search {'on' if e['face_search'] else 'off'}",
            f"date {e['date'] or 'not set'}",
            f"accent {e['accent'] or 'not set'}",
            f"cover photo {e['cover_photo_id'] or 'not set'}",
            f"functions {', '.join(e['functions']) or 'none'}",
        ]
    )
    _emit(args, e, f"{e['code']} ({e['name']}): {look}")
    return EXIT_OK


def _event_guest(args: argparse.Namespace, box: ControlClient) -> int:
    """The guest page's address with its QR code on the terminal; with ``--out``, the table card
    the box renders (``GET /api/events/{code}/card``) written to that file."""
    out: Path | None = args.out
    fmt = None if out is None else CARD_FORMATS.get(out.suffix.lower())
    if out is not None and fmt is None:
        return _usage(f"cannot tell what kind of card {out} is: name it .pdf, .svg or .png")
    if out is None and args.pin is not None:
        return _usage("--pin is printed on the table card: add --out card.pdf")
    result = box.request("GET", f"/api/events/{args.code}/guest")
    required = "  (PIN required)" if result["pin"] else ""
    if out is None:
        buffer = io.StringIO()
        segno.make(result["url"], error="m").terminal(out=buffer, compact=True)
        _emit(args, result, f"guest page: {result['url']}{required}\n{buffer.getvalue()}")
        return EXIT_OK
    params = {"format": fmt, **({"pin": args.pin} if args.pin is not None else {})}
    card = box.request("GET", f"/api/events/{args.code}/card", params=params)
    try:
        out.write_bytes(card if isinstance(card, bytes) else str(card).encode("utf-8"))
    except OSError as exc:
        return _usage(f"cannot write the card to {out}: {exc.strerror or exc}")
    if result["pin"] and args.pin is None:
        print(  # noqa: T201
            f"shutterbox: event {args.code} has a PIN, which the box cannot print (it keeps only its"
            f" hash): the card says 'PIN: ask your host'. Give it with --pin to print it.",
            file=sys.stderr,
        )
    _emit(
        args,
        {**result, "card_file": str(out), "format": fmt},
        f"guest page: {result['url']}{required}\ntable card (A6, {fmt}) written to {out}",
    )
    return EXIT_OK


def _usage(message: str) -> int:
    print(f"shutterbox: {message}", file=sys.stderr)  # noqa: T201
    return EXIT_USAGE


def _event_pin(args: argparse.Namespace, box: ControlClient) -> int:
    pin = None if args.pin.lower() == "none" else args.pin
    result = box.request("PUT", f"/api/events/{args.code}/pin", json={"pin": pin})
    _emit(args, result, f"{args.code}: guests {'must type the PIN' if pin else 'need no PIN'}")
    return EXIT_OK


def _event_host_link(args: argparse.Namespace, box: ControlClient) -> int:
    if args.revoke:
        result = box.request("DELETE", f"/api/events/{args.code}/host-link")
        _emit(args, result, f"{args.code}: host link revoked")
    else:
        result = box.request("POST", f"/api/events/{args.code}/host-link")
        _emit(
            args,
            result,
            f"host link for {args.code} (shown once; a new one replaces it):\n  {result['url']}",
        )
    return EXIT_OK


def _event_quota(args: argparse.Namespace, box: ControlClient) -> int:
    limit = args.limit
    result = box.request("PUT", f"/api/events/{args.code}/quota", json={"index_quota": limit})
    quota = "no index quota" if limit is None else f"index quota {limit}"
    _emit(args, result, f"{args.code}: {quota}; {result['released_jobs']} parked jobs released")
    return EXIT_OK


def _deadletter_act(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("POST", f"/api/deadletters/{args.job_id}/{args.action}")
    _emit(args, result, f"job {args.job_id}: {result['state']}")
    return EXIT_OK


def _deadletters(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("GET", "/api/deadletters")
    _emit_table(args, result, DEAD_LETTER_COLUMNS, "no dead letters")
    return EXIT_OK


def _ledger(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("GET", "/api/ledger", params={"event": args.event} if args.event else None)
    empty = "no billable cloud calls" + (f" for event {args.event}" if args.event else "")
    _emit_table(args, result, LEDGER_COLUMNS, empty)
    return EXIT_OK


def _photos(args: argparse.Namespace, box: ControlClient) -> int:
    result = _read_photos(box, args.event)
    _emit_table(
        args, result, PHOTO_COLUMNS, f"no photos in event {args.event}" if args.event else "no photos yet"
    )
    return EXIT_OK


def _photos_moderate(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request(
        "POST", f"/api/events/{args.code}/photos/moderate", json={"action": args.action, "ids": args.ids}
    )
    text = (
        f"{args.code}: {result['changed']} photo{'' if result['changed'] == 1 else 's'} {DONE[args.action]}"
    )
    if result["unchanged"]:
        text += f", {result['unchanged']} already were"
    if result["not_found"]:
        missing = ", ".join(str(i) for i in result["not_found"])
        text += f"; not photos of this event: {missing}"
    _emit(args, result, text)
    return EXIT_REFUSED if result["not_found"] else EXIT_OK


def _status(args: argparse.Namespace, box: ControlClient) -> int:
    result = _read_status(box)
    on_top = (STATUS_FIRST[0], "guest_url", *STATUS_FIRST[1:])  # what an operator looks for first
    first = [key for key in on_top if key in result]
    text = "\n".join(sections({key: result[key] for key in [*first, *(k for k in result if k not in first)]}))
    if not result["running"]:
        text += "\n(the box is not running: only the queue, read from its database)"
    _emit(args, result, text)
    return EXIT_OK


def _doctor(args: argparse.Namespace, box: ControlClient) -> int:
    """The running box runs every check (``GET /api/doctor``); a stopped one, those that do not
    need it, here. Exit 1 when a check FAILs."""
    from appliance import doctor

    try:
        result = box.request("GET", "/api/doctor")
    except NotRunningError:
        settings = load_settings(args.data)
        result = doctor.report(doctor.offline(settings, Layout(args.data.resolve())), box_running=False)
    _emit(args, result, "\n".join(doctor.lines(result)))
    return EXIT_OK if result["ok"] else EXIT_REFUSED


def _checklist(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("GET", "/api/checklist")
    _emit_table(args, result, CHECKLIST_COLUMNS, "no checklist")
    return EXIT_OK


def _rejections(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("GET", "/api/rejections")
    _emit_table(args, result, REJECTION_COLUMNS, "no rejected uploads")
    return EXIT_OK


def _cameras(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("GET", "/api/cameras")
    _emit_table(args, result, CAMERA_COLUMNS, "no cameras (make a key with: shutterbox key create)")
    return EXIT_OK


def _sync(args: argparse.Namespace, box: ControlClient) -> int:
    result = box.request("POST", f"/api/sync/{args.action}")
    _emit(args, result, "cloud sync paused" if result["paused"] else "cloud sync resumed")
    return EXIT_OK


def _ca_cert(args: argparse.Namespace, box: ControlClient) -> int:
    try:
        pem = box.request("GET", "/api/tls/ca.crt")
    except NotRunningError:  # the certificate is on the disk: no need for the box
        pem = _ca_cert_on_disk(box.data_dir)
    print(pem, end="")  # noqa: T201
    return EXIT_OK


def _ca_cert_on_disk(data: Path) -> str:
    """What the running box would answer: the operator's chain (``tls.cert_file``) when set,
    else the box's own CA, ``DATA/tls/ca.crt``, made on its first start."""
    settings = load_settings(data)
    if settings.tls.cert_file is not None:
        chain = settings.tls.cert_file
        try:
            return chain.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a PEM text file"
            raise ConfigError(
                f"cannot read the certificate chain {chain} set by tls.cert_file: {reason}"
            ) from exc
    path = Layout(data.resolve()).tls / "ca.crt"
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise NotRunningError(
            f"no CA certificate at {path}: the box makes it on its first start (shutterbox up --data {data})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotRunningError(f"cannot read the CA certificate {path}: {exc}") from exc


def _admin_token(args: argparse.Namespace) -> int:
    """Works with the box running or not (first boot makes the token before the box starts)."""
    from appliance.control import token

    data: Path = args.data
    layout = Layout(data.resolve())
    if not layout.root.is_dir():
        raise NotRunningError(f"no shutterbox data in {data}")
    if args.action == "rotate":
        secret = token.rotate(layout.admin_token)
        _emit(args, {"token": secret}, secret)
    else:
        existed = token.revoke(layout.admin_token)
        _emit(args, {"revoked": existed}, "admin token removed" if existed else "no admin token was set")
    return EXIT_OK


def _read_photos(box: ControlClient, event: str | None) -> Any:
    try:
        return box.request("GET", "/api/photos", params={"event": event} if event else None)
    except NotRunningError:
        return _offline(box.data_dir, lambda s: _event_photos(s, event))


async def _event_photos(store: Any, event: str | None) -> Any:
    if event is not None:
        await store.get_event(event)  # NotFoundError, as the running box answers 404
    return await store.list_photos(event)


def _read_status(box: ControlClient) -> Any:
    try:
        return {"running": True, **box.request("GET", "/api/status")}
    except NotRunningError:
        return {"running": False, "queue": _offline(box.data_dir, lambda s: s.counts())}


def _offline(data: Path, read: Any) -> Any:
    path = Layout(data.resolve()).database
    if not path.exists():
        raise NotRunningError(f"no shutterbox data in {data}")
    return asyncio.run(_read_offline(path, read))


async def _read_offline(path: Path, read: Any) -> Any:
    from appliance.store import Store

    async with Store(path, readonly=True) as store:
        result = await read(store)
    return [r.to_json() for r in result] if isinstance(result, list) else result


def _emit(args: argparse.Namespace, result: Any, text: str) -> None:
    # text may hold a camera's file name: its control characters never reach the terminal raw
    # (JSON escapes them itself); the text's own line breaks stay line breaks
    if args.json:
        print(json.dumps(result, indent=2))  # noqa: T201
    else:
        print("\n".join(escape_controls(line) for line in text.split("\n")))  # noqa: T201


def _emit_table(
    args: argparse.Namespace, rows: list[dict[str, Any]], columns: list[Column], empty: str
) -> None:
    """A listing: JSON for scripts (``[]`` when empty), else aligned columns or ``empty`` in words."""
    if args.json:
        print(json.dumps(rows, indent=2))  # noqa: T201
    else:
        print("\n".join(table(rows, columns)) if rows else escape_controls(empty))  # noqa: T201


if __name__ == "__main__":
    sys.exit(main())

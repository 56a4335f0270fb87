"""The table card: an A6 portrait card (105 x 148 mm) guests find on their table, with the
event's name and day, a large QR code of its guest page, the address in words, the WiFi to join,
the PIN if there is one, and three steps (join and scan, take a selfie, get your photos).

``render_card(facts, fmt)`` lays the card out once, in millimetres (:func:`layout`), then draws
that one layout as PDF (fpdf2), SVG (written here) or PNG (Pillow, 1240 x 1748 px: 300 dpi), so
the three formats say the same thing in the same places. Text is set in DejaVu Sans when the
system has it (any script it covers; the PDF embeds it), else in the PDF's core Helvetica with
what latin-1 cannot say spelled in plain letters (``Ł`` as ``L``) and Pillow's default font: an
event name never stops a card from printing.

Pure functions, no I/O but reading a font file; the admin API runs them on a worker thread
(``asyncio.to_thread``): a card takes a few tenths of a second of CPU.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

import segno
from PIL import Image, ImageDraw, ImageFont

CardFormat = Literal["pdf", "svg", "png"]
FORMATS: tuple[CardFormat, ...] = ("pdf", "svg", "png")
MEDIA_TYPES = {"pdf": "application/pdf", "svg": "image/svg+xml", "png": "image/png"}

WIDTH_MM, HEIGHT_MM = 105.0, 148.0  # A6 portrait
PNG_SIZE = (1240, 1748)  # A6 at 300 dpi
MARGIN_MM = 8.0
DEFAULT_ACCENT = "#1d6fd8"
INK = "#1a1a1a"
MUTED = "#555555"
QR_DARK = "#000000"  # only the QR code is pure black (tests find it by that)
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = {False: FONT_DIR / "DejaVuSans.ttf", True: FONT_DIR / "DejaVuSans-Bold.ttf"}
SVG_FONTS = "'DejaVu Sans', Helvetica, Arial, sans-serif"
PT_MM = 25.4 / 72  # one typographic point in millimetres

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
STEPS = ("Take a selfie", "Get every photo you are in")


class CardFormatError(ValueError):
    """A card format other than pdf, svg or png was asked for."""


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What one card says. ``pin`` is printed when given; without it, ``pin_required`` prints
    "PIN: ask your host" (the box keeps only the PIN's hash, so it cannot print it itself)."""

    name: str
    url: str  # the event's guest page, ``<guest address>/e/<code>``
    date: str | None = None  # ISO date, printed as "Saturday 24 December 2026"
    wifi_name: str | None = None
    pin: str | None = None
    pin_required: bool = False
    accent: str | None = None  # "#rrggbb"; None: DEFAULT_ACCENT


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    colour: str


@dataclass(frozen=True, slots=True)
class Line:
    """One line of text; ``x`` is its centre (``centred``) or its left edge, ``y`` its baseline."""

    text: str
    x: float
    y: float
    size: float  # points
    bold: bool
    colour: str
    centred: bool = True


@dataclass(frozen=True, slots=True)
class Layout:
    """The card in millimetres from its top left corner; the QR code is ``modules`` (dark True,
    no quiet zone: the card around it is white) in a square at ``qr_x, qr_y`` of side ``qr_size``."""

    rects: tuple[Rect, ...]
    lines: tuple[Line, ...]
    qr_x: float
    qr_y: float
    qr_size: float
    modules: tuple[tuple[bool, ...], ...]


def render_card(card: CardFacts, fmt: str) -> bytes:
    """The card as a PDF, SVG or PNG file's bytes; CardFormatError for any other ``fmt``."""
    if fmt not in FORMATS:
        raise CardFormatError(f"unknown card format {fmt!r}: a card is a pdf, svg or png file")
    drawn = layout(card)
    if fmt == "pdf":
        return _pdf(drawn, card.name)
    if fmt == "svg":
        return _svg(drawn, card.name)
    return _png(drawn)


def readable_date(iso: str) -> str:
    """``2026-12-24`` -> ``Thursday 24 December 2026``; anything else as it was given."""
    try:
        day = dt.date.fromisoformat(iso.strip()[:10])
    except ValueError:
        return iso.strip()
    return f"{DAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def accent_colour(accent: str | None) -> str:
    return accent.lower() if accent and re.fullmatch(r"#[0-9a-fA-F]{6}", accent) else DEFAULT_ACCENT


def text_on(background: str) -> str:
    """White on a dark accent, ink on a light one (relative luminance, as WCAG computes it)."""
    r, g, b = (_linear(int(background[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return INK if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.4 else "#ffffff"


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


# --- the layout, shared by the three formats


def layout(card: CardFacts) -> Layout:
    accent = accent_colour(card.accent)
    width = WIDTH_MM - 2 * MARGIN_MM
    centre = WIDTH_MM / 2
    lines: list[Line] = []

    # the title bar: the name (shrunk to fit two lines), the day under it
    on_accent = text_on(accent)
    name = printable(card.name) or "Our event"
    size, name_lines = _fit(name, width, sizes=(20, 18, 16, 14, 12), most=2)
    y = 7.0
    for text in name_lines:
        y += _line_height(size)
        lines.append(Line(text, centre, y - _descent(size), size, True, on_accent))
    if card.date:
        y += 1.5 + _line_height(10)
        day = printable(readable_date(card.date))
        lines.append(Line(day, centre, y - _descent(10), 10, False, on_accent))
    bar = y + 6
    rects = [Rect(0, 0, WIDTH_MM, bar, accent), Rect(0, HEIGHT_MM - 3, WIDTH_MM, 3, accent)]

    # under the QR code, from the bottom up: what it takes decides how large the code can be
    below: list[tuple[str, float, bool, str, float]] = []  # text, size, bold, colour, gap before
    address = _wrap(f"Or open {card.url} on your phone", width, 9, False)
    if len(address) > 1:  # the address whole where it fits, never "phone" alone on a line
        address = [*_wrap(f"Or open {card.url}", width, 9, False), "on your phone"]
    for text in address[:4]:
        below.append((text, 9, False, MUTED, 0))
    if card.wifi_name:
        for index, text in enumerate(_wrap(f"WiFi: {printable(card.wifi_name)}", width, 11, True)[:2]):
            below.append((text, 11, True, INK, 0 if index else 3))
    if card.pin or card.pin_required:
        pin = f"PIN: {printable(card.pin)}" if card.pin else "PIN: ask your host"
        below.append((pin, 11, True, INK, 0 if card.wifi_name else 3))
    first = "Join the WiFi, then scan the QR code" if card.wifi_name else "Scan the QR code with your camera"
    numbers = accent if on_accent == "#ffffff" else INK  # a light accent is unreadable on white
    steps = [(number, text) for number, text in enumerate((first, *STEPS), start=1)]
    steps_height = 3 + 3 * (_line_height(10) + 1.2)
    below_height = sum(_line_height(size) + gap for _, size, _, _, gap in below) + steps_height

    modules = tuple(
        tuple(bool(module) for module in row)
        for row in segno.make(card.url, error="m", micro=False).matrix_iter(scale=1, border=0)
    )
    quiet = 4 * 1.3  # four modules of about 1.3 mm: the code's own quiet zone, white
    room = HEIGHT_MM - 3 - 3 - below_height - bar - 2 * quiet + 2
    qr_size = max(36.0, min(60.0, room))
    steps_top = HEIGHT_MM - 3 - 3 - steps_height  # the steps sit at the foot of the card
    spare = steps_top - (bar + 2 * quiet + qr_size - 1.5 + below_height - steps_height)
    qr_y = bar + quiet + max(0.0, spare) / 2  # the code and its words in the middle of the rest
    qr_x = (WIDTH_MM - qr_size) / 2

    y = qr_y + qr_size + quiet - 1.5
    for text, size, bold, colour, gap in below:
        y += gap + _line_height(size)
        lines.append(Line(text, centre, y - _descent(size), size, bold, colour))
    y = max(y, steps_top) + 3
    for number, text in steps:
        y += _line_height(10) + 1.2
        baseline = y - _descent(10)
        lines.append(Line(str(number), MARGIN_MM + 2, baseline, 10, True, numbers))
        step = _wrap(text, width - 8, 10, False)[0]
        lines.append(Line(step, MARGIN_MM + 7, baseline, 10, False, INK, centred=False))
    return Layout(tuple(rects), tuple(lines), qr_x, qr_y, qr_size, modules)


def printable(text: str) -> str:
    """``text`` on one line, without the characters the card's font has no glyph for (an emoji,
    a script DejaVu lacks): they would print as empty boxes."""
    known = _glyphs()
    kept = "".join(c for c in text if known is None or ord(c) in known or c.isspace())
    return " ".join(kept.split())


@functools.lru_cache(maxsize=1)
def _glyphs() -> frozenset[int] | None:
    """The characters the card's font draws (both weights); None when it is Pillow's default."""
    from fontTools.ttLib import TTFont  # fpdf2's own dependency, read once

    found: frozenset[int] | None = None
    for path in {FONTS[False], FONTS[True]}:
        if not path.exists():
            return None
        with TTFont(str(path), lazy=True) as font:
            codes = frozenset(font.getBestCmap())
        found = codes if found is None else found & codes
    return found


def _line_height(size: float) -> float:
    return size * PT_MM * 1.25


def _descent(size: float) -> float:
    return size * PT_MM * 0.35


def _fit(text: str, width: float, sizes: tuple[float, ...], most: int) -> tuple[float, list[str]]:
    """The largest of ``sizes`` at which ``text`` wraps into ``most`` lines (at the smallest, the
    last line is cut with an ellipsis)."""
    for size in sizes:
        wrapped = _wrap(text, width, size, True)
        if len(wrapped) <= most:
            return size, wrapped
    size = sizes[-1]
    wrapped = _wrap(text, width, size, True)
    last = " ".join(wrapped[most - 1 :])
    while last and _width(last + "…", size, True) > width:
        last = last[:-1]
    return size, [*wrapped[: most - 1], last.rstrip() + "…"]


def _wrap(text: str, width: float, size: float, bold: bool) -> list[str]:
    """``text`` in lines no wider than ``width`` mm; a word wider than a line (an address) is
    broken where it must."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if _width(candidate, size, bold) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        while _width(word, size, bold) > width:
            cut = len(word)
            while cut > 1 and _width(word[:cut], size, bold) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines or [""]


def _width(text: str, size: float, bold: bool) -> float:
    """The width of ``text`` in mm at ``size`` points, by the card's font (Pillow's metrics)."""
    return float(_font(bold, 100).getlength(text)) / 100 * size * PT_MM


@functools.lru_cache(maxsize=32)
def _font(bold: bool, size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONTS[bold] if FONTS[bold].exists() else FONTS[False]
    try:
        return ImageFont.truetype(str(path), size_px)
    except OSError:
        return ImageFont.load_default(size=size_px)


def _font_file(bold: bool) -> Path | None:
    for path in (FONTS[bold], FONTS[False]):
        if path.exists():
            return path
    return None


def _runs(modules: tuple[tuple[bool, ...], ...]) -> list[tuple[int, int, int]]:
    """The dark modules as horizontal runs (row, first column, length): far fewer shapes."""
    runs = []
    for row, cells in enumerate(modules):
        col = 0
        while col < len(cells):
            if cells[col]:
                start = col
                while col < len(cells) and cells[col]:
                    col += 1
                runs.append((row, start, col - start))
            else:
                col += 1
    return runs


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


# --- PDF (fpdf2)


def latin1(text: str) -> str:
    """``text`` in latin-1 for the PDF's core font: accents kept where latin-1 has them, other
    letters spelled without theirs (``Ł`` -> ``L``), anything else as ``?``."""
    out = []
    for char in text:
        if ord(char) < 256:
            out.append(char)
            continue
        plain = _SPELLED.get(char) or "".join(
            c for c in unicodedata.normalize("NFKD", char) if ord(c) < 128 and not unicodedata.combining(c)
        )
        out.append(plain or "?")
    return "".join(out)


_SPELLED = {
    "Ł": "L",
    "ł": "l",
    "Đ": "D",
    "đ": "d",
    "Ø": "O",
    "Œ": "OE",
    "œ": "oe",
    "ß": "ss",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
}


def _pdf(drawn: Layout, title: str) -> bytes:
    from fpdf import FPDF  # imported here: only a card needs it (the box imports this module at start)

    pdf = FPDF(orientation="portrait", unit="mm", format=(WIDTH_MM, HEIGHT_MM))
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.set_creation_date(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # the same card, the same bytes
    regular, bold = _font_file(False), _font_file(True)
    clean: Callable[[str], str]
    if regular is not None:
        pdf.add_font("card", "", str(regular))
        pdf.add_font("card", "B", str(bold or regular))
        family, clean = "card", str
    else:
        family, clean = "helvetica", latin1
    pdf.set_title(title)  # the document's metadata is Unicode whatever the font
    pdf.add_page()
    for rect in drawn.rects:
        pdf.set_fill_color(*_rgb(rect.colour))
        pdf.rect(rect.x, rect.y, rect.w, rect.h, style="F")
    pdf.set_fill_color(*_rgb(QR_DARK))
    module = drawn.qr_size / len(drawn.modules)
    for row, col, length in _runs(drawn.modules):
        pdf.rect(drawn.qr_x + col * module, drawn.qr_y + row * module, length * module, module, style="F")
    for line in drawn.lines:
        pdf.set_font(family, "B" if line.bold else "", line.size)
        pdf.set_text_color(*_rgb(line.colour))
        text = clean(line.text)
        x = line.x - pdf.get_string_width(text) / 2 if line.centred else line.x
        pdf.text(x, line.y, text)
    return bytes(pdf.output())


# --- SVG (written directly)


def _svg(drawn: Layout, title: str) -> bytes:
    def number(value: float) -> str:
        return f"{value:.3f}".rstrip("0").rstrip(".")

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{number(WIDTH_MM)}mm" height="{number(HEIGHT_MM)}mm"'
        f' viewBox="0 0 {number(WIDTH_MM)} {number(HEIGHT_MM)}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{number(WIDTH_MM)}" height="{number(HEIGHT_MM)}" fill="#ffffff"/>',
    ]
    for rect in drawn.rects:
        parts.append(
            f'<rect x="{number(rect.x)}" y="{number(rect.y)}" width="{number(rect.w)}"'
            f' height="{number(rect.h)}" fill="{rect.colour}"/>'
        )
    module = drawn.qr_size / len(drawn.modules)
    path = "".join(
        f"M{number(drawn.qr_x + col * module)} {number(drawn.qr_y + row * module)}"
        f"h{number(length * module)}v{number(module)}h{number(-length * module)}z"
        for row, col, length in _runs(drawn.modules)
    )
    parts.append(f'<path class="qr" d="{path}" fill="{QR_DARK}" shape-rendering="crispEdges"/>')
    for line in drawn.lines:
        anchor = ' text-anchor="middle"' if line.centred else ""
        weight = ' font-weight="bold"' if line.bold else ""
        parts.append(
            f'<text x="{number(line.x)}" y="{number(line.y)}" font-family={quoteattr(SVG_FONTS)}'
            f' font-size="{number(line.size * PT_MM)}"{weight}{anchor} fill="{line.colour}">'
            f"{escape(line.text)}</text>"
        )
    parts.append("</svg>")
    return ("\n".join(parts) + "\n").encode("utf-8")


# --- PNG (Pillow)


def _png(drawn: Layout) -> bytes:
    width, height = PNG_SIZE
    scale = width / WIDTH_MM  # pixels per mm (the same both ways, within a pixel)
    image = Image.new("RGB", PNG_SIZE, "#ffffff")
    draw = ImageDraw.Draw(image)

    def px(value: float) -> int:
        return round(value * scale)

    for rect in drawn.rects:
        draw.rectangle(
            (px(rect.x), px(rect.y), px(rect.x + rect.w) - 1, px(rect.y + rect.h) - 1), rect.colour
        )
    count = len(drawn.modules)
    module = px(drawn.qr_size) // count  # whole pixels per module: sharp edges for a scanner
    left = px(drawn.qr_x) + (px(drawn.qr_size) - module * count) // 2
    top = px(drawn.qr_y) + (px(drawn.qr_size) - module * count) // 2
    for row, col, length in _runs(drawn.modules):
        x, y = left + col * module, top + row * module
        draw.rectangle((x, y, x + length * module - 1, y + module - 1), QR_DARK)
    for line in drawn.lines:
        font = _font(line.bold, max(1, round(line.size * PT_MM * scale)))
        draw.text(
            (px(line.x), px(line.y)),
            line.text,
            fill=line.colour,
            font=font,
            anchor="ms" if line.centred else "ls",
        )
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(300, 300), optimize=True)
    assert image.size == (width, height)
    return out.getvalue()

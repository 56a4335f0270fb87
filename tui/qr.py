"""The guest page's QR code as terminal text: two modules per character cell with the upper
half block, so a version-2 code (25 modules, plus a 2-module quiet zone) takes 29 columns by
15 rows and fits an 80x24 screen. Colours are explicit (black on white) so the code scans on a
dark terminal too. Pure function; no I/O.
"""

from __future__ import annotations

import segno
from rich.style import Style
from rich.text import Text

DARK = "#000000"
LIGHT = "#ffffff"
UPPER_HALF = "\u2580"


def qr_text(data: str, border: int = 2) -> Text:
    code = segno.make(data, micro=False)
    rows = [[bool(module) for module in row] for row in code.matrix_iter(scale=1, border=border)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))  # the quiet zone is light
    out = Text(no_wrap=True, overflow="crop")
    styles = {
        (top, bottom): Style(color=DARK if top else LIGHT, bgcolor=DARK if bottom else LIGHT)
        for top in (False, True)
        for bottom in (False, True)
    }
    for index in range(0, len(rows), 2):
        if index:
            out.append("\n")
        pairs = list(zip(rows[index], rows[index + 1], strict=True))
        start = 0
        while start < len(pairs):  # one span per run of equal cells
            end = start
            while end < len(pairs) and pairs[end] == pairs[start]:
                end += 1
            out.append(UPPER_HALF * (end - start), styles[pairs[start]])
            start = end
    return out


def qr_size(data: str, border: int = 2) -> tuple[int, int]:
    """(columns, rows) that ``qr_text`` takes on screen."""
    width, height = segno.make(data, micro=False).symbol_size(scale=1, border=border)
    return int(width), (int(height) + 1) // 2

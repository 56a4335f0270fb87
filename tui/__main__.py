"""``python -m tui --data DIR``: run the operator console (``shutterbox console`` calls the same
``tui.app.run``). Runs on the main thread."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tui.app import run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui", description="shutterbox operator console")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("SHUTTERBOX_DATA", "./var")),
        help="the box's data folder (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    return run(args.data)


if __name__ == "__main__":
    sys.exit(main())

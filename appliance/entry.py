"""The ``shutterbox`` console script's module, kept free of imports on purpose.

Face worker processes are started with multiprocessing's ``spawn``, which first imports the
script that started the box; the script imports this module. Had it imported ``appliance.cli``
(settings, the admin client, pydantic, httpx), every worker would carry ~26 MB of it for nothing:
three workers of a 600 MB box. The CLI is imported when the command actually runs.
"""

from __future__ import annotations


def main() -> int:
    from appliance.cli import main as run

    return run()

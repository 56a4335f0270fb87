"""The box process's own resources, set once at start on the main thread: its file-handle limit
and how the C allocator gives memory back.

- The soft ``RLIMIT_NOFILE`` is raised to the hard one: the box holds a socket per camera, guest
  and data connection, and a flood from the LAN is met by the listeners' own caps, not by
  running out of handles (systemd's hard limit is set in the unit).
- glibc's allocator is told to serve large blocks (a 20 MB selfie, a decoded frame) from their
  own mappings, which go back to the system when freed: by default the threshold adapts upward
  after the first such block is freed, and a burst of big requests stays held by the process.
  ``trim()`` returns the heap's free top after a burst.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import resource
from collections.abc import MutableMapping

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 512 * 1024
HUGE_PAGES = "glibc.malloc.hugetlb=1"


def raise_file_limit() -> int:
    """Raise the soft file-handle limit to the hard one; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the file-handle limit from %d to %d: %s", soft, hard, exc)
            return soft
        return hard
    return soft


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # find_library runs ldconfig in a subprocess: once per process, not after every search burst
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def release_memory_promptly() -> bool:
    """Large blocks from their own mappings (given back when freed); False off glibc."""
    libc = _libc()
    if libc is None:
        return False
    mmap_ok: int = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trim_ok: int = libc.mallopt(M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD)
    return mmap_ok == 1 and trim_ok == 1


def huge_pages_for_children(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Processes started from now on (the face workers) back malloc's blocks with transparent
    huge pages: glibc's ``glibc.malloc.hugetlb=1``, read when a process starts, asks the kernel
    for them (with THP at ``madvise`` or ``always``; elsewhere nothing changes). A 24 MP photo
    maps ~160 MB of fresh blocks: with 4 KiB pages 62 of its 358 ms went to the kernel, with
    2 MiB pages 31 of 321-330 ms (docs/faces.md), at the same RSS. Call it before
    any thread starts (it changes the environment); a choice already in ``GLIBC_TUNABLES`` is
    kept. False when it was."""
    current = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in current:
        return False
    environ["GLIBC_TUNABLES"] = f"{current}:{HUGE_PAGES}" if current else HUGE_PAGES
    return True


def trim() -> None:
    """Give the free top of the heap back to the system (after a burst of big requests)."""
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(OSError):
            libc.malloc_trim(0)

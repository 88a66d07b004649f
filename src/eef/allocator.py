"""Keeping freed memory in the process for the next tensor, instead of returning it to the system.

A batched rollout allocates and frees tensors of tens of megabytes on every forward pass (a turn's
activations, masks, cache buffers). glibc serves blocks above its mmap threshold (at most 32 MiB,
adjusted as it goes) with fresh pages and gives freed memory above its trim threshold back to the
system, so the next tensor of that size faults on every 4 KiB page it touches: 120,000-220,000 page
faults per 64-episode rollout of the default ``tiny`` on CPU, against a few dozen once both
thresholds are raised (docs/performance.md). One-episode generation allocates little and is unaffected.
"""

from __future__ import annotations

import ctypes
import sys

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 256 << 20  # blocks up to this size come from the heap, where freed memory is reused
TRIM_THRESHOLD = 1 << 30  # free memory the heap keeps before giving any back


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; returns whether it could (Linux with
    glibc; elsewhere nothing changes). The cost: up to ``TRIM_THRESHOLD`` of freed memory stays mapped."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))

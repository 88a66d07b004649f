"""Seeds: every random choice derives from a recorded base seed and stable names."""

from __future__ import annotations

import hashlib


def derive_seed(base: int, *names: object) -> int:
    """A 31-bit seed from ``base`` and ``names``, stable across runs and machines
    (unlike ``hash()``, which Python salts per process)."""
    text = "/".join([str(base), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF

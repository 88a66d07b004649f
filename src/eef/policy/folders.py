"""Model folders written all at once: a reader (or a resumed run) never sees half a checkpoint."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(path: Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder next to ``path``; when the block succeeds, rename it to ``path``.

    A kill or an error leaves ``path`` as it was (a hidden ``.<name>.*.tmp`` folder may stay behind).
    An existing ``path`` is replaced, or, with ``keep_existing``, kept and the new one discarded
    (for caches that a concurrent process may have filled with the same content).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    staging.chmod(0o755)  # mkdtemp makes it private; a checkpoint or cache is as readable as any folder
    try:
        yield staging
        if path.exists() and keep_existing:
            shutil.rmtree(staging)
        else:
            _swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, path: Path) -> None:
    # rename() cannot replace a non-empty folder: move the old one aside first, then drop it.
    retired = None
    if path.exists():
        retired = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
        os.replace(path, retired / path.name)
    os.replace(staging, path)
    if retired is not None:
        shutil.rmtree(retired)

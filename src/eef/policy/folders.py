"""Model folders written all at once: a reader (or a resumed run) never sees half a checkpoint."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError

from eef.errors import WRITE_FAILURES, WriteError
from eef.storage import FOLDER_MODE


@contextmanager
def atomic_directory(path: Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder next to ``path``; when the block succeeds, rename it to ``path``.

    A kill or an error leaves ``path`` as it was (a hidden ``.<name>.*.tmp`` folder may stay behind).
    An existing ``path`` is replaced, or, with ``keep_existing``, kept and the new one discarded
    (for caches that a concurrent process may have filled with the same content). A write that fails
    for want of space or permission, in the block or here, raises :class:`WriteError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as err:
        raise WriteError.of(err, path) from err
    staging.chmod(FOLDER_MODE)  # mkdtemp makes it private; a checkpoint or cache is as readable as any folder
    try:
        yield staging
        if path.exists() and keep_existing:
            shutil.rmtree(staging)
        else:
            _swap_in(staging, path)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        code = _write_failure(err)
        if code is not None:
            raise WriteError(path, code) from err
        raise


# What the Rust libraries raise for a failed write, with the errno only in their text ("... (os error
# 28)"): safetensors its own error type, tokenizers a bare Exception.
_RUST_WRITE_ERRORS = (SafetensorError, Exception)


def _write_failure(err: BaseException) -> int | None:
    """The errno of a write that failed for want of space or permission: an OSError's, or the one a
    Rust library (safetensors, tokenizers) writes into the text of its error."""
    code = err.errno if isinstance(err, OSError) else None
    if type(err) in _RUST_WRITE_ERRORS and (match := re.search(r"\(os error (\d+)\)", str(err))):
        code = int(match.group(1))
    return code if code in WRITE_FAILURES else None


def _swap_in(staging: Path, path: Path) -> None:
    # rename() cannot replace a non-empty folder: move the old one aside first, then drop it.
    retired = None
    if path.exists():
        retired = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
        os.replace(path, retired / path.name)
    os.replace(staging, path)
    if retired is not None:
        shutil.rmtree(retired)

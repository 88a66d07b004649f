"""Errors the CLI turns into one line: things the user can fix (exit code 2), work that stopped
part-way (exit code 1), and files that could not be written (exit code 1)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def first_problem(err: ValidationError, whole: str = "") -> tuple[str, str]:
    """Where pydantic's first error is (the dotted path of the field; ``whole`` when it concerns the
    whole object) and what it says: the parts of a one-line :class:`UserError`."""
    first = err.errors()[0]
    return ".".join(str(part) for part in first["loc"]) or whole, first["msg"]


class UserError(Exception):
    """Bad input: say what is wrong, where, and what to do, in one line."""


class IncompleteError(Exception):
    """Work that stopped part-way for a reason outside the user's input (e.g. an API that kept failing):
    one line and exit code 1; what finished is kept, and rerunning the same command does the rest."""


# What the user can do about the ways a write fails that are not eef's doing.
_REMEDIES = {
    errno.ENOSPC: "free space",
    errno.EDQUOT: "free space or raise the quota",
    errno.EFBIG: "free space or raise the file size limit",
    errno.EROFS: "make the file system writable",
    errno.EACCES: "give this user write permission there",
    errno.EPERM: "give this user write permission there",
}
WRITE_FAILURES = frozenset(_REMEDIES)


class WriteError(IncompleteError):
    """A file that could not be written (disk full, read-only file system, no permission).

    Every write of eef is atomic (temporary file + rename) or a whole-line append that is cut back
    when it fails, so nothing is left torn and rerunning ``retry`` once the cause is gone continues."""

    def __init__(self, path: Path | str | None, code: int, retry: str | None = None):
        super().__init__(path, code)
        self.path = path
        self.code = code
        self.retry = retry

    def __str__(self) -> str:
        remedy = _REMEDIES.get(self.code, "fix that")
        retry = self.retry or "run the same command again"
        return f"{self.path or 'a file'}: {os.strerror(self.code).lower()}; {remedy}, then {retry}"

    @classmethod
    def of(cls, err: OSError, path: Path | str | None = None) -> WriteError:
        """``err`` (an OSError from a write) as a WriteError naming ``path`` (default: the error's own file)."""
        return cls(path or err.filename, err.errno or errno.EIO)


@contextmanager
def on_write_failure(retry: str) -> Iterator[None]:
    """A write that fails inside the block ends in a :class:`WriteError` that says to run ``retry`` once
    the cause is gone; this also catches libraries' own writes (an OSError of :data:`WRITE_FAILURES`)."""
    try:
        yield
    except WriteError as err:
        err.retry = err.retry or retry
        raise
    except OSError as err:
        if err.errno not in WRITE_FAILURES:
            raise
        failure = WriteError.of(err)
        failure.retry = retry
        raise failure from err

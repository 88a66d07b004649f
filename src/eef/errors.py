"""Errors the CLI turns into one line and exit code 2: things the user can fix."""

from __future__ import annotations

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

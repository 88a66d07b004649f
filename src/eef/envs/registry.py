"""Environment registry: names -> suites, and whether each is usable on this machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from inspect import signature
from typing import Any

from eef.envs.base import Suite
from eef.errors import UserError


@dataclass(frozen=True)
class EnvEntry:
    name: str
    description: str
    load: Callable[[], type[Suite]]  # imports the suite's class on use: listing needs no heavy import
    unavailable_reason: Callable[[], str | None]  # None when usable here
    # Options that can make an environment usable that is not by default (e.g. where its data is):
    # when a caller passes one, the suite checks it instead and says what is wrong.
    data_options: tuple[str, ...] = ()


_REGISTRY: dict[str, EnvEntry] = {}


def register(entry: EnvEntry) -> None:
    _REGISTRY[entry.name] = entry


def entries() -> list[EnvEntry]:
    _load_builtins()
    return sorted(_REGISTRY.values(), key=lambda e: e.name)


def get_suite(name: str, **options: Any) -> Suite:
    """The suite called ``name``; a UserError says what is known or missing."""
    _load_builtins()
    entry = _REGISTRY.get(name)
    if entry is None:
        known = ", ".join(sorted(_REGISTRY))
        raise UserError(f"unknown environment {name!r}: choose one of {known} (see `eef envs`)")
    reason = None if set(entry.data_options) & set(options) else entry.unavailable_reason()
    if reason is not None:
        raise UserError(f"environment {name!r} is not usable here: {reason}")
    suite_class = entry.load()
    accepts = signature(suite_class)
    try:
        accepts.bind(**options)
    except TypeError as err:
        accepted = ", ".join(accepts.parameters) or "none"
        raise UserError(f"environment {name!r}: {err}; its options: {accepted}") from None
    return suite_class(**options)


def _load_builtins() -> None:
    # Imported lazily so that `eef envs` works even when an optional dependency is missing.
    from eef.envs import builtin  # noqa: F401

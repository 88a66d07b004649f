"""Environment registry: names -> suites, and whether each is usable on this machine."""

from __future__ import annotations

from inspect import signature
from typing import Any

from eef.envs.base import EnvEntry, Suite
from eef.envs.builtin import BUILTIN
from eef.errors import UserError

_REGISTRY: dict[str, EnvEntry] = {entry.name: entry for entry in BUILTIN}


def register(entry: EnvEntry) -> None:
    """Add an environment defined outside eef (the built-in ones are in :data:`eef.envs.builtin.BUILTIN`),
    e.g. ``register(EnvEntry(name="counter", description="...", suite="my_package.counter:CounterSuite"))``
    (docs/extending.md). A name already registered is refused: an entry never silently replaces another."""
    if entry.name in _REGISTRY:
        raise ValueError(f"an environment called {entry.name!r} is registered already")
    _REGISTRY[entry.name] = entry


def unregister(name: str) -> None:
    """Remove the environment :func:`register` added as ``name`` (e.g. at the end of a test)."""
    del _REGISTRY[name]


def entries() -> list[EnvEntry]:
    return sorted(_REGISTRY.values(), key=lambda e: e.name)


def get_entry(name: str) -> EnvEntry:
    """The entry called ``name``; a UserError lists the known ones."""
    entry = _REGISTRY.get(name)
    if entry is None:
        known = ", ".join(sorted(_REGISTRY))
        raise UserError(f"unknown environment {name!r}: choose one of {known} (see `eef envs`)")
    return entry


def get_suite(name: str, **options: Any) -> Suite:
    """The suite called ``name``; a UserError says what is known or missing."""
    entry = get_entry(name)
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

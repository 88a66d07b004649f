"""Expert names per environment: ``eef collect --expert NAME`` and a run's ``experts:`` list. An environment's
experts are the mapping its registry entry names (:attr:`eef.envs.base.EnvEntry.experts`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from eef.envs.registry import get_entry
from eef.errors import UserError
from eef.experts.base import Expert


def _expert_factories(env_name: str) -> Mapping[str, Callable[[], Expert]]:
    return get_entry(env_name).expert_factories()


def expert_names(env_name: str) -> list[str]:
    return list(_expert_factories(env_name))


def make_expert(env_name: str, spec: str) -> Expert:
    """The expert called ``spec`` for ``env_name``; a UserError lists the known ones."""
    factories = _expert_factories(env_name)
    if spec not in factories:
        known = ", ".join(factories) or "none yet"
        raise UserError(f"unknown expert {spec!r} for environment {env_name!r}: known experts are {known}")
    return factories[spec]()

"""Expert names per environment: ``eef collect --expert NAME`` and a run's ``experts:`` list."""

from __future__ import annotations

from eef.errors import UserError
from eef.experts.base import Expert


def expert_names(env_name: str) -> list[str]:
    if env_name in ("shop", "webshop"):
        from eef.experts.scripted_shop import SKILL_LEVELS

        return list(SKILL_LEVELS)
    if env_name == "sciworld":
        from eef.experts.gold_path import GOLD_EXPERTS

        return list(GOLD_EXPERTS)
    return []


def make_expert(env_name: str, spec: str) -> Expert:
    """The expert called ``spec`` for ``env_name``; a UserError lists the known ones."""
    if env_name in ("shop", "webshop"):
        from eef.experts.scripted_shop import SKILL_LEVELS, ScriptedShopExpert

        if spec in SKILL_LEVELS:
            # Real WebShop titles do not spell out a goal's attributes: look for the goal's product itself.
            return ScriptedShopExpert(spec, SKILL_LEVELS[spec], knows_target=env_name == "webshop")
    if env_name == "sciworld":
        from eef.experts.gold_path import GOLD_EXPERTS, GoldPathExpert

        if spec in GOLD_EXPERTS:
            return GoldPathExpert(spec, GOLD_EXPERTS[spec])
    known = ", ".join(expert_names(env_name)) or "none yet"
    raise UserError(f"unknown expert {spec!r} for environment {env_name!r}: known experts are {known}")

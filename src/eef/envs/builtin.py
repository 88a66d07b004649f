"""The environments eef ships with: one :class:`EnvEntry` each in :data:`BUILTIN`, which the registry reads.
Each entry imports its suite's module only when used, so that listing needs no heavy import."""

from __future__ import annotations

from eef.envs.base import EnvEntry, Suite


def _shop_suite() -> type[Suite]:
    from eef.envs.shop.env import ShopSuite

    return ShopSuite


def _sciworld_suite() -> type[Suite]:
    from eef.envs.sciworld.env import SciWorldSuite

    return SciWorldSuite


def _sciworld_unavailable() -> str | None:
    from eef.envs.sciworld.java import unavailable_reason

    return unavailable_reason()


def _webshop_suite() -> type[Suite]:
    from eef.envs.webshop.env import WebShopSuite

    return WebShopSuite


def _webshop_unavailable() -> str | None:
    from eef.envs.webshop.files import default_data_problem

    return default_data_problem()


BUILTIN = [
    EnvEntry(
        name="shop",
        description="built-in WebShop-style shopping over a generated catalog (search, pages, options, buy)",
        load=_shop_suite,
        unavailable_reason=lambda: None,
    ),
    EnvEntry(
        name="sciworld",
        description="AllenAI's ScienceWorld (ETO's 24 tasks, easy simplifications, per-task step limits); needs Java",
        load=_sciworld_suite,
        unavailable_reason=_sciworld_unavailable,
    ),
    EnvEntry(
        name="webshop",
        description="WebShop's real products and goals from its data files, served by the shop engine (no Flask/Java)",
        load=_webshop_suite,
        unavailable_reason=_webshop_unavailable,
        data_options=("data_dir",),
    ),
]

"""The environments eef ships with: one :class:`EnvEntry` each in :data:`BUILTIN`, which the registry reads.
An entry names its suite, its experts and its availability check by entry-point strings, imported only
when used: listing the environments needs no heavy import (docs/extending.md adds one)."""

from __future__ import annotations

from eef.envs.base import EnvEntry

BUILTIN = [
    EnvEntry(
        name="shop",
        description="built-in WebShop-style shopping over a generated catalog (search, pages, options, buy)",
        suite="eef.envs.shop.env:ShopSuite",
        experts="eef.experts.scripted_shop:SHOP_EXPERTS",
    ),
    EnvEntry(
        name="sciworld",
        description="AllenAI's ScienceWorld (ETO's 24 tasks, easy simplifications, per-task step limits); needs Java",
        suite="eef.envs.sciworld.env:SciWorldSuite",
        experts="eef.experts.gold_path:GOLD_PATH_EXPERTS",
        unavailable="eef.envs.sciworld.java:unavailable_reason",
    ),
    EnvEntry(
        name="webshop",
        description="WebShop's real products and goals from its data files, served by the shop engine (no Flask/Java)",
        suite="eef.envs.webshop.env:WebShopSuite",
        experts="eef.experts.scripted_shop:WEBSHOP_EXPERTS",
        unavailable="eef.envs.webshop.files:default_data_problem",
        data_options=("data_dir",),
    ),
]

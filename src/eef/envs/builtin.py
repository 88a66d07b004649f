"""The environments eef ships with, registered by name (imported lazily by the registry)."""

from __future__ import annotations

from typing import Any

from eef.envs.base import Suite
from eef.envs.registry import EnvEntry, register


def _shop_suite(**options: Any) -> Suite:
    # Imported on use: building the shop's catalog and index is not needed to list environments.
    from eef.envs.shop.env import ShopSuite

    return ShopSuite(**options)


register(
    EnvEntry(
        name="shop",
        description="built-in WebShop-style shopping over a generated catalog (search, pages, options, buy)",
        factory=_shop_suite,
        unavailable_reason=lambda: None,
    )
)

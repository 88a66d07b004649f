"""Everything the shop is made of for one seed: catalog, search index and goals."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from eef.envs.shop.catalog import Catalog, generate_catalog
from eef.envs.shop.goals import generate_goals
from eef.envs.shop.schema import Goal
from eef.envs.shop.search import SearchEngine
from eef.seeding import derive_seed


@dataclass(frozen=True)
class ShopWorld:
    seed: int
    catalog: Catalog
    engine: SearchEngine
    goals: dict[str, tuple[Goal, ...]]  # split -> goals


def generate_world(seed: int) -> ShopWorld:
    catalog = generate_catalog(random.Random(derive_seed(seed, "shop", "catalog")))
    engine = SearchEngine(catalog)
    goals = generate_goals(catalog, engine, random.Random(derive_seed(seed, "shop", "goals")))
    return ShopWorld(seed, catalog, engine, goals)


@lru_cache(maxsize=4)
def load_world(seed: int) -> ShopWorld:
    """The world for ``seed``, built once per process (a few seconds) and shared after."""
    return generate_world(seed)

"""``webshop``: WebShop's real products and goals, served by the shop engine.

The products, goals and splits come from WebShop's own files (:mod:`eef.envs.webshop.files`,
:mod:`eef.envs.webshop.goals`); pages, actions and navigation are the shop engine's
(:class:`eef.envs.shop.env.ShopEnvironment`), searched by BM25 over the text WebShop's Lucene index
holds, and scored by :func:`eef.envs.webshop.reward.webshop_reward`. So the shop's experts and any
policy trained on ``shop`` speak to it unchanged, and no Flask, Java or spaCy is needed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from eef.envs.base import Suite
from eef.envs.shop.analysis import reached_target
from eef.envs.shop.catalog import Catalog
from eef.envs.shop.env import (
    DEFAULT_MAX_STEPS,
    INSTRUCTION,
    ShopEnvironment,
    check_instruction_placement,
    shop_atomic_terms,
)
from eef.envs.shop.pages import InstructionPlacement
from eef.envs.shop.schema import Product
from eef.envs.shop.search import SearchEngine
from eef.envs.shop.world import ShopWorld
from eef.envs.webshop.files import WebShopData, data_folder, read_webshop_data
from eef.envs.webshop.goals import DIFFICULTIES, SPLITS, human_goals, split_goals, synthetic_goals
from eef.envs.webshop.reward import webshop_reward
from eef.errors import UserError
from eef.seeding import derive_seed
from eef.types import Task, Trajectory

GoalSource = Literal["auto", "synthetic", "human"]
# Lucene's BM25 parameters as pyserini's searcher sets them, which WebShop's index is searched with.
LUCENE_K1 = 0.9
LUCENE_B = 0.4


def indexed_text(product: Product) -> str:
    """What WebShop's index holds of a product: title, description, first bullet point, option values."""
    values = [value for values in product.options.values() for value in values]
    return " ".join([product.title, product.description, *product.bullet_points[:1], *values])


@dataclass(frozen=True)
class WebShopWorld:
    world: ShopWorld  # catalog, search engine, goals by split
    data: WebShopData
    goal_source: str  # synthetic | human
    task_indices: dict[str, tuple[int, ...]]  # split -> each goal's index in WebShop's shuffled list


@lru_cache(maxsize=4)
def load_webshop(
    folder: Path,
    products_file: str | None,
    attributes_file: str | None,
    num_products: int | None,
    goals: GoalSource,
    seed: int,
) -> WebShopWorld:
    """Parse the files and index the products once per process (about a second for 1,000 products)."""
    data = read_webshop_data(folder, products_file, attributes_file, num_products)
    source = goals if goals != "auto" else ("human" if (folder / "items_human_ins.json").is_file() else "synthetic")
    rng = random.Random(derive_seed(seed, "webshop", "price limits"))
    if source == "human":
        if not data.human:
            raise UserError(f"{folder}: no human instructions (items_human_ins.json): use goals: synthetic")
        made = human_goals(data, rng)
    else:
        made = synthetic_goals(data, rng)
    if not made:
        raise UserError(f"{folder}: the {source} instructions give no goal for these products")
    catalog = Catalog(data.products)
    engine = SearchEngine(catalog, text=indexed_text, k1=LUCENE_K1, b=LUCENE_B)
    splits = split_goals(made)
    world = ShopWorld(seed, catalog, engine, {split: tuple(goal for _, goal in splits[split]) for split in SPLITS})
    indices = {split: tuple(index for index, _ in splits[split]) for split in SPLITS}
    return WebShopWorld(world, data, source, indices)


class WebShopSuite(Suite):
    """``webshop``: WebShop's products and goals from its data files (options below; see docs/webshop.md).

    ``data_dir``: the data folder (default ``$EEF_WEBSHOP_DATA``); ``goals``: synthetic (the attribute
    file's instructions), human (``items_human_ins.json``) or auto (human when that file is there);
    ``products_file`` / ``attributes_file``: file names when the folder holds several; ``num_products``:
    the first N products only, as WebShop's ``num_products``; ``seed``: the price-limit draws;
    ``instruction_on_pages``: none, top (as WebShop's own pages) or bottom, as for ``shop``.
    """

    name = "webshop"
    instruction = INSTRUCTION

    def __init__(
        self,
        data_dir: str | None = None,
        goals: GoalSource = "auto",
        products_file: str | None = None,
        attributes_file: str | None = None,
        num_products: int | None = None,
        seed: int = 0,
        max_steps: int = DEFAULT_MAX_STEPS,
        instruction_on_pages: InstructionPlacement = "none",
    ) -> None:
        if goals not in ("auto", "synthetic", "human"):
            raise UserError(f"webshop option goals must be auto, synthetic or human, got {goals!r}")
        for option, value in (("max_steps", max_steps), ("num_products", num_products or 1)):
            if not isinstance(value, int) or value < 1:
                raise UserError(f"webshop option {option} must be a positive integer, got {value!r}")
        if not isinstance(seed, int):
            raise UserError(f"webshop option seed must be an integer, got {seed!r}")
        self.max_steps = max_steps
        self.instruction_on_pages = check_instruction_placement("webshop", instruction_on_pages)
        folder = data_folder(data_dir).resolve()
        self.loaded = load_webshop(folder, products_file, attributes_file, num_products, goals, seed)
        self.world = self.loaded.world
        self._tasks = {
            split: tuple(
                Task(
                    env=self.name,
                    task_id=f"webshop-{index}",
                    split=split,
                    instruction=goal.instruction_text,
                    difficulty=goal.difficulty,
                    meta={"goal": goal.model_dump(mode="json"), "goal_index": index, "goals": self.loaded.goal_source},
                )
                for index, goal in zip(self.loaded.task_indices[split], goals_of_split, strict=True)
            )
            for split, goals_of_split in self.world.goals.items()
        }

    def splits(self) -> list[str]:
        return list(SPLITS)

    def tasks(self, split: str) -> list[Task]:
        if split not in self._tasks:
            raise UserError(f"unknown split {split!r} for environment webshop: choose one of {', '.join(SPLITS)}")
        return list(self._tasks[split])

    def make(self) -> ShopEnvironment:
        return ShopEnvironment(
            self.world, self.max_steps, reward=webshop_reward, instruction_on_pages=self.instruction_on_pages
        )

    def atomic_terms(self) -> list[str]:
        return shop_atomic_terms(self.world.catalog.products)

    def difficulty_levels(self) -> list[str]:
        return list(DIFFICULTIES)

    def expert_analysis(self, trajectories: list[Trajectory], tasks: dict[str, Task]) -> dict[str, float]:
        failures = [trajectory for trajectory in trajectories if not trajectory.success]
        opened = sum(reached_target(t, tasks[t.task_id].meta["goal"]["asin"]) for t in failures)
        return {
            "failures": len(failures),
            "failures that opened the goal's product": opened / len(failures) if failures else 0.0,
        }

"""WebShop's goals (``get_synthetic_goals`` / ``get_human_goals`` in its ``goal.py``) and its splits.

Synthetic goals: one per (product with an instruction, combination of its option values), every option
named, in product-file order; the instruction is the attribute file's text + " with name: value, and
..." + ", and price lower than X dollars". Human goals: one per human instruction that names at least
one attribute, with the options the worker picked. A price limit is drawn per product (synthetic) or per
instruction (human) as WebShop draws it: two of the first four multiples of $10 above the price, the
larger one; none (limit $1,000,000, no price text) when fewer than two fit under $1,000.

Splits follow WebShop's baselines: the goals shuffled by ``random.Random(233)`` (WebShop's
``random.seed(233); random.shuffle(goals)``, the same permutation), then test = the first 500,
dev = the next 1,000 (WebShop's "eval"), train = the rest.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from eef.envs.shop.schema import Goal, Product
from eef.envs.webshop.files import HumanInstruction, WebShopData

SHUFFLE_SEED = 233  # WebShop's fixed goal shuffle
SPLITS = ("train", "dev", "test")
TEST_GOALS = 500
DEV_GOALS = 1000
NO_PRICE_LIMIT = 1_000_000.0
PRICE_STEPS = tuple(10.0 * i for i in range(1, 100))  # WebShop's PRICE_RANGE
DIFFICULTIES = ("options-0", "options-1", "options-2", "options-3+")


def difficulty(option_count: int) -> str:
    """A goal's level: how many option values it asks for (each one is a click that can go wrong)."""
    return DIFFICULTIES[min(option_count, len(DIFFICULTIES) - 1)]


def price_limit(price: float, rng: random.Random) -> float:
    """WebShop's draw: the larger of two of the first four $10 steps above ``price``."""
    above = [step for step in PRICE_STEPS if step > price][:4]
    if len(above) < 2:
        return NO_PRICE_LIMIT
    return max(rng.sample(above, 2))


def _price_text(limit: float) -> str:
    return "" if limit == NO_PRICE_LIMIT else f", and price lower than {limit:.2f} dollars"


def synthetic_goals(data: WebShopData, rng: random.Random) -> list[Goal]:
    goals = []
    for product in data.products:
        if product.asin not in data.synthetic:
            continue
        instruction, attributes = data.synthetic[product.asin]
        limit = price_limit(product.price, rng)
        names = sorted(product.options)
        for combination in itertools.product(*(product.options[name] for name in names)):
            options = dict(zip(names, combination, strict=True))
            option_text = ", and ".join(f"{name}: {value}" for name, value in options.items())
            text = instruction + (f" with {option_text}" if option_text else "") + _price_text(limit)
            goals.append(_goal(product, text, attributes, options, limit, len(options)))
    return goals


def human_goals(data: WebShopData, rng: random.Random) -> list[Goal]:
    goals = []
    for product in data.products:
        for item in (data.human or {}).get(product.asin, []):
            if not item.attributes:
                continue  # WebShop skips these too
            limit = price_limit(product.price, rng)
            goals.append(_human_goal(product, item, limit))
    return goals


def _human_goal(product: Product, item: HumanInstruction, limit: float) -> Goal:
    text = item.instruction.strip(".") + _price_text(limit)
    return _goal(product, text, item.attributes, list(item.options), limit, len(item.options))


def _goal(
    product: Product,
    text: str,
    attributes: list[str],
    options: dict[str, str] | list[str],
    limit: float,
    option_count: int,
) -> Goal:
    return Goal(
        asin=product.asin,
        instruction_text=text,
        attributes=attributes,
        goal_options=options,
        price_upper=limit,
        query=product.query,
        product_category=product.product_category,
        name=product.title,
        category=product.category,
        difficulty=difficulty(option_count),
    )


def split_goals(goals: Sequence[Goal]) -> dict[str, list[tuple[int, Goal]]]:
    """Shuffle as WebShop does; each split's goals with their index in the shuffled list (WebShop's
    session number, ``fixed_<index>``)."""
    shuffled = list(goals)
    random.Random(SHUFFLE_SEED).shuffle(shuffled)
    indexed = list(enumerate(shuffled))
    return {
        "test": indexed[:TEST_GOALS],
        "dev": indexed[TEST_GOALS : TEST_GOALS + DEV_GOALS],
        "train": indexed[TEST_GOALS + DEV_GOALS :],
    }

"""Shopping goals with difficulty levels, and their train/dev/test splits.

A goal names a product type, two attributes, a price limit and, from some levels on, option values.
Its level is read off the results of its natural query (:func:`goal_query`): the target is always the
first listing that earns reward 1, and what stands above it decides the skill the goal needs.

- ``easy``: the target is on page 1 and the goal names no options. Listings above it are visibly over
  the price limit.
- ``options``: as easy, but the goal names one or two option values that must be clicked before buying.
- ``paging``: the target is on page 2 or 3; everything above it is visibly over the price limit, so
  the agent must read prices and press ``next >``. Most of these goals also name options.
- ``tempting``: listings above the target (page 1 to 3) include near-duplicates within the price
  limit that lack one of the goal's option values. Only their item page shows it, so the agent must open
  one, see the missing value and go back with ``< prev``. These goals always name options.

Hard levels (for expert statistics) are options, paging and tempting.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from eef.envs.shop.catalog import Catalog, cluster_key
from eef.envs.shop.pages import RESULTS_PER_PAGE
from eef.envs.shop.schema import Goal, Product
from eef.envs.shop.search import SearchEngine

DIFFICULTIES = ("easy", "options", "paging", "tempting")
HARD_DIFFICULTIES = ("options", "paging", "tempting")
SPLITS = ("train", "dev", "test")
# 3,000 training goals: behaviour cloning generalises from the ~1,100 expert successes on them where it
# memorised the ~550 of 1,500 (docs/shop.md). 1,000 test goals: one goal is 0.1 point of a win rate.
SPLIT_SIZES = {"train": 3000, "dev": 200, "test": 1000}
LEVEL_SHARES = {"easy": 0.2, "options": 0.25, "paging": 0.25, "tempting": 0.3}
GOAL_PAGES = 3  # targets lie within the first three result pages
MAX_DECOYS = 3  # tempting near-duplicates above a target
MAX_GOALS_PER_PRODUCT = 2

_LEADS = ("i need", "i am looking for", "find me", "i want", "i would like")


def goal_query(goal: Goal) -> str:
    """The natural search query for ``goal``: its attributes, then its product type."""
    return " ".join([*goal.attributes, goal.query])


@dataclass(frozen=True)
class _Candidate:
    difficulty: str
    target: Product
    options: dict[str, str]
    price_upper: float

    def key(self) -> tuple[object, ...]:
        return (*cluster_key(self.target), tuple(self.options.items()), self.price_upper)


def generate_goals(catalog: Catalog, engine: SearchEngine, rng: random.Random) -> dict[str, tuple[Goal, ...]]:
    """Goals for every split, :data:`LEVEL_SHARES` of each level in each split."""
    candidates = _candidates(catalog, engine, rng)
    totals = {level: _level_count(sum(SPLIT_SIZES.values()), level) for level in DIFFICULTIES}
    chosen = _choose(candidates, totals, rng)
    splits: dict[str, list[Goal]] = {split: [] for split in SPLITS}
    for level in DIFFICULTIES:
        level_goals = [_make_goal(candidate, rng) for candidate in chosen[level]]
        start = 0
        for split in ("test", "dev"):
            count = _level_count(SPLIT_SIZES[split], level)
            splits[split] += level_goals[start : start + count]
            start += count
        splits["train"] += level_goals[start:]
    for goals in splits.values():
        rng.shuffle(goals)
    return {split: tuple(goals) for split, goals in splits.items()}


def _level_count(total: int, level: str) -> int:
    return round(total * LEVEL_SHARES[level])


def _candidates(catalog: Catalog, engine: SearchEngine, rng: random.Random) -> dict[str, list[_Candidate]]:
    clusters: dict[tuple[str, tuple[str, ...]], set[str]] = defaultdict(set)
    for product in catalog.products:
        clusters[cluster_key(product)].add(product.asin)
    candidates: dict[str, list[_Candidate]] = defaultdict(list)
    for (query, attributes), members in clusters.items():
        ranking = engine.search(" ".join([*attributes, query]))
        # Above a target there must be only near-duplicates, whose reward follows from price and options.
        ranked = [catalog.by_asin[asin] for asin in _member_prefix(ranking, members)]
        for rank, target in enumerate(ranked[: GOAL_PAGES * RESULTS_PER_PAGE]):
            for candidate in _candidates_for(target, ranked[:rank], rng):
                candidates[candidate.difficulty].append(candidate)
    return candidates


def _member_prefix(ranking: Sequence[str], members: set[str]) -> list[str]:
    prefix = []
    for asin in ranking:
        if asin not in members:
            break
        prefix.append(asin)
    return prefix


def _candidates_for(target: Product, above: list[Product], rng: random.Random) -> list[_Candidate]:
    paging = len(above) >= RESULTS_PER_PAGE
    found = []
    limit = _price_limit(rng, target.price, min((product.price for product in above), default=math.inf))
    if limit is not None:
        found.append(_Candidate("paging" if paging else "easy", target, {}, limit))
    if not target.options:
        return found
    for _ in range(4):  # a few draws of option values
        names = rng.sample(sorted(target.options), rng.randint(1, min(2, len(target.options))))
        wanted = {name: rng.choice(target.options[name]) for name in sorted(names)}
        # Listings above that offer every wanted value must be over the limit, or they would be the target.
        bound = min((product.price for product in above if _offers(product, wanted)), default=math.inf)
        limit = _price_limit(rng, target.price, bound)
        if limit is None:
            continue
        decoys = [product for product in above if product.price <= limit and not _offers(product, wanted)]
        if len(decoys) > MAX_DECOYS:
            continue
        level = "tempting" if decoys else "paging" if paging else "options"
        found.append(_Candidate(level, target, wanted, limit))
    return found


def _offers(product: Product, wanted: dict[str, str]) -> bool:
    return all(value in product.options.get(name, []) for name, value in wanted.items())


def _price_limit(rng: random.Random, price: float, bound: float) -> float | None:
    """A round price limit above ``price`` and below ``bound``, or None when there is none."""
    for step in (10, 5, 1):
        lowest = (math.floor(price / step) + 1) * step
        limits = [float(lowest + k * step) for k in range(3) if lowest + k * step < bound]
        if limits:
            return rng.choice(limits)
    return None


def _choose(
    candidates: dict[str, list[_Candidate]], totals: dict[str, int], rng: random.Random
) -> dict[str, list[_Candidate]]:
    """``totals[level]`` candidates of each level: distinct goals, few per product."""
    seen: set[tuple[object, ...]] = set()
    per_product: dict[str, int] = defaultdict(int)
    chosen: dict[str, list[_Candidate]] = {}
    for level in sorted(DIFFICULTIES, key=lambda level: len(candidates[level]) / max(totals[level], 1)):
        pool = list(candidates[level])
        rng.shuffle(pool)
        chosen[level] = []
        for candidate in pool:
            if len(chosen[level]) == totals[level]:
                break
            if candidate.key() in seen or per_product[candidate.target.asin] >= MAX_GOALS_PER_PRODUCT:
                continue
            seen.add(candidate.key())
            per_product[candidate.target.asin] += 1
            chosen[level].append(candidate)
        if len(chosen[level]) < totals[level]:
            raise RuntimeError(f"the shop catalog yields {len(chosen[level])} {level} goals, {totals[level]} needed")
    return chosen


def _make_goal(candidate: _Candidate, rng: random.Random) -> Goal:
    target = candidate.target
    first, second = target.attributes
    options = ", and ".join(f"{name}: {value}" for name, value in candidate.options.items())
    wanted = f" with {options}" if options else ""
    instruction = (
        f"{rng.choice(_LEADS)} {first} and {second} {target.query}{wanted}, "
        f"and price lower than {candidate.price_upper:.2f} dollars"
    )
    return Goal(
        asin=target.asin,
        instruction_text=instruction,
        attributes=list(target.attributes),
        goal_options=dict(candidate.options),
        price_upper=candidate.price_upper,
        query=target.query,
        product_category=target.product_category,
        name=target.title,
        category=target.category,
        difficulty=candidate.difficulty,
    )

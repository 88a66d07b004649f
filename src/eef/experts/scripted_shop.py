"""A scripted expert for ``shop`` whose mistakes follow an explicit failure model.

The expert reads the goal from ``task.meta["goal"]`` (privileged), but decides from what the pages
show, as an agent would: it searches the goal's natural query, skips listings whose title lacks a goal
attribute or whose price is over the limit, pages with ``next >`` while no listing fits, opens the
first listing that fits, goes back with ``< prev`` when the item page lacks a goal option value (a
tempting near-duplicate), clicks each goal option and buys.

Its mistakes mirror what EEF's authors saw GPT-4 do on WebShop: on hard goals it mostly makes the
right moves (search, paging, opening the target) and then slips at the end. Each mistake is named in
:class:`ShopMistakes`; every draw comes from the episode's ``random.Random(seed)``.

On real WebShop products (``webshop``) titles rarely spell out a goal's attributes and type, so the
expert is built with ``knows_target=True``: it looks for the goal's own product by its id (privileged,
like the goal itself), and takes a listing whose title shares at least half of the target title's words
for a look-alike (what it settles for when it gives up paging).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from functools import partial

from eef.envs.base import Environment
from eef.envs.shop.goals import goal_query
from eef.envs.shop.pages import ItemView, Listing, ResultsView, is_search_page, parse_item, parse_results
from eef.envs.shop.schema import Goal
from eef.envs.shop.text import content_words, has_phrase
from eef.experts.base import Expert, ExpertEpisode
from eef.react import format_turn
from eef.types import Task


@dataclass(frozen=True)
class ShopMistakes:
    """Chance of each mistake, each drawn where the expert could make it.

    - ``misread_price`` (once per episode): ignores the price limit all episode, so it opens (and buys)
      a listing over the limit when one fits otherwise.
    - ``give_up_paging`` (each time no listing on a page fits and there is a next page): instead of
      ``next >``, settles for the first listing whose title fits and buys it as it is.
    - ``skip_check`` (each opened item that lacks a goal option value): buys it anyway, choosing the
      options it has, instead of going back.
    - ``buy_early`` (each item to buy that needs options): clicks buy now before choosing any option.
    - ``forget_option`` (each item to buy that offers wanted options, when not buying early): never
      clicks one of them, chosen at random.
    - ``wrong_option`` (the same items, when nothing was forgotten): clicks another value of one of
      them, chosen at random.

    Option slips are drawn once per item, not once per wanted option: the expert slips at most once
    near the end, as EEF's authors saw GPT-4 do, and its successes hold goals with two options as
    often as goals with one (with a draw per option, two-option goals succeeded half as often, and a
    student cloned from the successes never learned to choose a second option: docs/shop.md).
    """

    # Defaults set on shop's train split so that the expert mostly does the hard part (paging, checking
    # items) right and slips at the end, on the option clicks, as GPT-4 does in the paper: about 39%
    # success overall, over 95% on easy goals, under 20% on tempting ones, and about three quarters of
    # the failures on hard goals open the target first (docs/shop.md).
    misread_price: float = 0.05
    give_up_paging: float = 0.1
    skip_check: float = 0.25
    buy_early: float = 0.25
    forget_option: float = 0.35
    wrong_option: float = 0.5

    def scaled(self, factor: float) -> ShopMistakes:
        """Every chance times ``factor`` (capped at 1): e.g. 0.5 for a stronger expert, 1.5 for a weaker one."""
        return replace(self, **{f.name: min(1.0, getattr(self, f.name) * factor) for f in fields(self)})


# Named skill levels, e.g. for a strong and a weak expert source ("GPT-3&4" in the EEF paper).
# `scripted-perfect` makes no mistake: an oracle that solves every goal, for measuring how much any
# exploration of the expert's failures could add at most (docs/results.md, "The ceiling").
SKILL_LEVELS: dict[str, ShopMistakes] = {
    "scripted": ShopMistakes(),
    "scripted-strong": ShopMistakes().scaled(0.5),
    "scripted-weak": ShopMistakes().scaled(1.5),
    "scripted-perfect": ShopMistakes().scaled(0.0),
}


# A listing looks like the target (knows_target mode) when its title has this share of the target title's words.
LOOK_ALIKE_OVERLAP = 0.5


class ScriptedShopExpert(Expert):
    def __init__(
        self, name: str = "scripted", mistakes: ShopMistakes | None = None, knows_target: bool = False
    ) -> None:
        self.name = name
        self.mistakes = mistakes or ShopMistakes()
        self.knows_target = knows_target

    def start(self, task: Task, seed: int, env: Environment) -> ExpertEpisode:
        goal = Goal.model_validate(task.meta["goal"])
        return _ShopEpisode(goal, self.mistakes, random.Random(seed), self.knows_target)


# The experts of `shop` and of `webshop` by name (their registry entries name these: eef.envs.builtin).
SHOP_EXPERTS = {name: partial(ScriptedShopExpert, name, mistakes) for name, mistakes in SKILL_LEVELS.items()}
# Real WebShop titles do not spell out a goal's attributes: look for the goal's product itself.
WEBSHOP_EXPERTS = {
    name: partial(ScriptedShopExpert, name, mistakes, knows_target=True) for name, mistakes in SKILL_LEVELS.items()
}


class _ShopEpisode(ExpertEpisode):
    def __init__(self, goal: Goal, mistakes: ShopMistakes, rng: random.Random, knows_target: bool = False) -> None:
        self.goal = goal
        self.mistakes = mistakes
        self.rng = rng
        self.knows_target = knows_target
        self.target_words = set(content_words(goal.name))
        self.misread_price = rng.random() < mistakes.misread_price
        self.rejected: set[str] = set()
        self.opened = ""  # the listing opened last
        self.settling = False  # gave up looking: buys whatever it opened
        self.plan: list[tuple[str, str]] = []  # (thought, action) turns left on the opened item

    def act(self, observation: str) -> str:
        if is_search_page(observation):
            return format_turn(f"I'll search for {goal_query(self.goal)}.", f"search[{goal_query(self.goal)}]")
        results = parse_results(observation)
        if results is not None:
            return self._on_results(results)
        item = parse_item(observation)
        if item is not None:
            return self._on_item(item)
        return "Thought: This page is not what I expected; I'll stop."

    def _fits_title(self, listing: Listing) -> bool:
        if self.knows_target:
            return listing.asin == self.goal.asin
        return all(has_phrase(listing.title, phrase) for phrase in [*self.goal.attributes, self.goal.query])

    def _looks_right(self, listing: Listing) -> bool:
        """Whether the title looks like what the goal asks for (a candidate to open or to settle for)."""
        if self._fits_title(listing) or not self.knows_target:
            return self._fits_title(listing)
        shared = self.target_words & set(content_words(listing.title))
        return bool(self.target_words) and len(shared) >= LOOK_ALIKE_OVERLAP * len(self.target_words)

    def _within_limit(self, price: float) -> bool:
        return self.misread_price or self.goal.price_upper <= 0 or price <= self.goal.price_upper

    def _on_results(self, view: ResultsView) -> str:
        titled = [listing for listing in view.listings if self._looks_right(listing)]
        fitting = [
            listing
            for listing in titled
            if self._fits_title(listing) and listing.asin not in self.rejected and self._within_limit(listing.price)
        ]
        if fitting:
            best = fitting[0]
            return self._open(best, f"{best.asin} fits: {best.title} at ${best.price:.2f}.")
        if view.has_next and not (titled and self.rng.random() < self.mistakes.give_up_paging):
            thought = f"No listing on page {view.page} fits within ${self.goal.price_upper:.2f}. Next page."
            return format_turn(thought, "click[next >]")
        closest = titled or list(view.listings)
        if not closest:
            return "Thought: Nothing here matches; I'll stop."
        self.settling = True
        return self._open(closest[0], f"{closest[0].asin} is the closest match; I'll take it.")

    def _open(self, listing: Listing, thought: str) -> str:
        self.opened, self.plan = listing.asin, []
        return format_turn(thought, f"click[{listing.asin}]")

    def _on_item(self, view: ItemView) -> str:
        if not self.plan:
            self.plan = self._plan_item(view)
        thought, action = self.plan.pop(0)
        return format_turn(thought, action)

    def _plan_item(self, view: ItemView) -> list[tuple[str, str]]:
        buy = ("It matches what I need. Buying it.", "click[buy now]")
        if self.settling:
            return [buy]
        wanted = self._wanted(view)
        missing = [value for name, value in wanted if value not in view.options.get(name, [])]
        # Listings over the limit were never opened (unless misread), so price needs no second look here.
        if missing and self.rng.random() >= self.mistakes.skip_check:
            self.rejected.add(self.opened)
            return [(f"It has no {missing[0]} option. Going back to the results.", "click[< prev]")]
        offered = [(name, value) for name, value in wanted if value not in missing]
        if offered and self.rng.random() < self.mistakes.buy_early:
            return [buy]
        choices = list(offered)
        if offered and self.rng.random() < self.mistakes.forget_option:
            choices.remove(self.rng.choice(offered))
        elif offered and self.rng.random() < self.mistakes.wrong_option:
            slip = self.rng.randrange(len(offered))
            name, value = offered[slip]
            others = [other for other in view.options.get(name, []) if other != value]
            if others:
                choices[slip] = (name, self.rng.choice(others))
        return [*((f"Selecting {name}: {value}.", f"click[{value}]") for name, value in choices), buy]

    def _wanted(self, view: ItemView) -> list[tuple[str, str]]:
        """The goal's (option name, value) pairs; list-form goal options take the name the item shows."""
        if isinstance(self.goal.goal_options, dict):
            return list(self.goal.goal_options.items())
        return [
            (next((name for name, values in view.options.items() if value in values), ""), value)
            for value in self.goal.goal_options
        ]

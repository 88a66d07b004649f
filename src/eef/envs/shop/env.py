"""The built-in WebShop-style environment: :class:`ShopEnvironment` and its suite, ``shop``.

Pages and actions follow WebShop's text mode (see :mod:`eef.envs.shop.pages`): ``search[query]`` on
the search page, ``click[button]`` for a button the current page shows (matched case-insensitively).
Anything else answers "Invalid action: ..." and changes nothing, but counts as a step.
``instruction_on_pages`` repeats the instruction on every later page and answer, as WebShop's own
pages do (:func:`eef.envs.shop.pages.with_instruction`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from eef.envs.base import Environment, StepResult, Suite
from eef.envs.shop import pages
from eef.envs.shop.analysis import shop_expert_stats
from eef.envs.shop.goals import DIFFICULTIES, SPLITS
from eef.envs.shop.pages import InstructionPlacement
from eef.envs.shop.reward import Reward, shop_reward
from eef.envs.shop.schema import Goal, Product
from eef.envs.shop.world import ShopWorld, load_world
from eef.errors import UserError
from eef.types import Task, Trajectory

DEFAULT_MAX_STEPS = 15

# What buying scores: (product, goal, selected options) -> Reward. ``webshop`` passes its own.
RewardFunction = Callable[[Product, Goal, Mapping[str, str]], Reward]

_ACTION = re.compile(r"(search|click)\[(.*)\]", re.IGNORECASE | re.DOTALL)
_SUB_PAGES = tuple(name.lower() for name in pages.SUB_PAGES)
_BACK, _PREV, _NEXT, _BUY = (name.lower() for name in (pages.BACK_TO_SEARCH, pages.PREV, pages.NEXT, pages.BUY_NOW))

INSTRUCTION = (
    "You are shopping on WebShop for the item the instruction describes. Each turn, answer with one line "
    "'Thought: <your reasoning>' and one line 'Action: <action>'. Actions: search[<query>] on the search page; "
    "click[<button>] for a button the page shows: a product id, next >, < prev, back to search, an option "
    "value, description, features, reviews, buy now. Buy the item that has every attribute and option the "
    "instruction asks for, within its price limit: choose the options before clicking buy now."
)


@dataclass
class _Episode:
    goal: Goal
    page: str = "search"  # search | results | item | sub | done
    results: tuple[str, ...] = ()
    page_number: int = 1
    product: Product | None = None
    sub_page: str = ""
    selected: dict[str, str] = field(default_factory=dict)
    steps: int = 0


class ShopEnvironment(Environment):
    def __init__(
        self,
        world: ShopWorld,
        max_steps: int = DEFAULT_MAX_STEPS,
        reward: RewardFunction = shop_reward,
        instruction_on_pages: pages.InstructionPlacement = "none",
    ) -> None:
        self._world = world
        self._max_steps = max_steps
        self._reward = reward
        self._instruction_on_pages = instruction_on_pages
        self._episode: _Episode | None = None

    def reset(self, task: Task) -> str:
        self._episode = _Episode(goal=Goal.model_validate(task.meta["goal"]))
        return self._render()

    def fork(self) -> ShopEnvironment:
        fork = ShopEnvironment(self._world, self._max_steps, self._reward, self._instruction_on_pages)
        if self._episode is not None:
            # The episode's only mutable part is the selected options; the rest is replaced, not changed.
            fork._episode = replace(self._episode, selected=dict(self._episode.selected))
        return fork

    def step(self, action: str) -> StepResult:
        episode = self._episode
        if episode is None:
            raise RuntimeError("step() before reset()")
        if episode.page == "done":
            return StepResult(pages.invalid("the episode is over", "nothing"), 0.0, True, {"invalid": True})
        episode.steps += 1
        result = self._apply(episode, action.strip())
        if not result.done and episode.steps >= self._max_steps:
            episode.page = "done"
            info = {**result.info, "termination": "step_limit"}
            return StepResult(result.observation, 0.0, True, info)
        return result

    def _apply(self, episode: _Episode, action: str) -> StepResult:
        match = _ACTION.fullmatch(action)
        if match is None:
            return self._invalid(episode, f"cannot read {action[:60]!r}")
        verb, argument = match.group(1).lower(), match.group(2).strip()
        if verb == "search":
            if episode.page != "search":
                return self._invalid(episode, "search is only available on the search page")
            if not argument:
                return self._invalid(episode, "empty search query")
            episode.page, episode.page_number = "results", 1
            episode.results = self._world.engine.search(argument)
            return self._valid()
        button = argument.lower()
        if button == _BACK and episode.page != "search":
            episode.page = "search"
            return self._valid()
        if episode.page == "results":
            return self._click_results(episode, button)
        if episode.page == "item":
            return self._click_item(episode, button)
        if episode.page == "sub" and button == _PREV:
            episode.page = "item"
            return self._valid()
        return self._invalid(episode, f"no button {argument[:60]!r} on this page")

    def _click_results(self, episode: _Episode, button: str) -> StepResult:
        listed = {asin.lower(): asin for asin in self._listed(episode)}
        if button == _NEXT and episode.page_number * pages.RESULTS_PER_PAGE < len(episode.results):
            episode.page_number += 1
        elif button == _PREV and episode.page_number > 1:
            episode.page_number -= 1
        elif button in listed:
            episode.page, episode.product, episode.selected = "item", self._world.catalog.by_asin[listed[button]], {}
        else:
            return self._invalid(episode, f"no button {button[:60]!r} on this page")
        return self._valid()

    def _click_item(self, episode: _Episode, button: str) -> StepResult:
        product = episode.product
        assert product is not None
        if button == _PREV:
            episode.page = "results"
        elif button in _SUB_PAGES:
            episode.page, episode.sub_page = "sub", button
        elif button == _BUY:
            reward = self._reward(product, episode.goal, episode.selected).total
            episode.page = "done"
            return StepResult(pages.done_page(reward), reward, True, {"invalid": False, "termination": "done"})
        else:
            for name, values in product.options.items():
                value = next((value for value in values if value.lower() == button), None)
                if value is not None:
                    episode.selected[name] = value
                    return self._valid()
            return self._invalid(episode, f"no button {button[:60]!r} on this page")
        return self._valid()

    def _valid(self) -> StepResult:
        return StepResult(self._render(), 0.0, False, {"invalid": False})

    def _invalid(self, episode: _Episode, reason: str) -> StepResult:
        available = {
            "search": "search[<query>]",
            "results": "click[...] with back to search, next >, < prev or a product id on this page",
            "item": "click[...] with back to search, < prev, an option value, description, features, reviews, buy now",
            "sub": "click[...] with back to search, < prev",
        }[episode.page]
        answer = pages.with_instruction(
            pages.invalid(reason, available), episode.goal.instruction_text, self._instruction_on_pages
        )
        return StepResult(answer, 0.0, False, {"invalid": True})

    def _listed(self, episode: _Episode) -> tuple[str, ...]:
        start = (episode.page_number - 1) * pages.RESULTS_PER_PAGE
        return episode.results[start : start + pages.RESULTS_PER_PAGE]

    def _render(self) -> str:
        episode = self._episode
        assert episode is not None
        if episode.page == "search":
            return pages.search_page(episode.goal.instruction_text)
        if episode.page == "results":
            listed = [self._world.catalog.by_asin[asin] for asin in self._listed(episode)]
            page = pages.results_page(episode.page_number, len(episode.results), listed)
        else:
            assert episode.product is not None
            if episode.page == "item":
                page = pages.item_page(episode.product, episode.selected)
            else:
                page = pages.sub_page(episode.product, episode.sub_page)
        return pages.with_instruction(page, episode.goal.instruction_text, self._instruction_on_pages)


def shop_atomic_terms(products: Iterable[Product]) -> list[str]:
    """Product ids and option values (what an agent copies from a page or the instruction into an
    action), and the separator between a page's elements with its leading space (a third of a page's
    tokens otherwise)."""
    values = {value for product in products for values in product.options.values() for value in values}
    return [pages.SEP.rstrip(), *(product.asin for product in products), *sorted(values)]


def check_instruction_placement(env: str, value: object) -> pages.InstructionPlacement:
    if value not in pages.INSTRUCTION_PLACEMENTS:
        choices = ", ".join(pages.INSTRUCTION_PLACEMENTS)
        raise UserError(f"{env} option instruction_on_pages must be one of {choices}, got {value!r}")
    return value  # type: ignore[return-value]


class ShopSuite(Suite):
    """``shop``: the built-in WebShop-style environment over a catalog generated from ``seed``.

    Options: ``seed`` (catalog and goals), ``max_steps`` (per episode), ``instruction_on_pages`` (none,
    top or bottom: where later pages repeat the instruction; see :mod:`eef.envs.shop.pages`)."""

    name = "shop"
    instruction = INSTRUCTION

    def __init__(
        self, seed: int = 0, max_steps: int = DEFAULT_MAX_STEPS, instruction_on_pages: InstructionPlacement = "none"
    ) -> None:
        if not isinstance(max_steps, int) or max_steps < 1:
            raise UserError(f"shop option max_steps must be a positive integer, got {max_steps!r}")
        if not isinstance(seed, int):
            raise UserError(f"shop option seed must be an integer, got {seed!r}")
        self.seed = seed
        self.max_steps = max_steps
        self.instruction_on_pages = check_instruction_placement("shop", instruction_on_pages)
        self.world = load_world(seed)
        self._tasks = {
            split: tuple(
                Task(
                    env=self.name,
                    task_id=f"shop-{split}-{index}",
                    split=split,
                    instruction=goal.instruction_text,
                    difficulty=goal.difficulty,
                    meta={"goal": goal.model_dump(mode="json")},
                )
                for index, goal in enumerate(goals)
            )
            for split, goals in self.world.goals.items()
        }

    def splits(self) -> list[str]:
        return list(SPLITS)

    def tasks(self, split: str) -> list[Task]:
        if split not in self._tasks:
            raise UserError(f"unknown split {split!r} for environment shop: choose one of {', '.join(SPLITS)}")
        return list(self._tasks[split])

    def make(self) -> ShopEnvironment:
        return ShopEnvironment(self.world, self.max_steps, instruction_on_pages=self.instruction_on_pages)

    def atomic_terms(self) -> list[str]:
        return shop_atomic_terms(self.world.catalog.products)

    def difficulty_levels(self) -> list[str]:
        return list(DIFFICULTIES)

    def expert_analysis(self, trajectories: list[Trajectory], tasks: dict[str, Task]) -> dict[str, float]:
        stats = shop_expert_stats(trajectories, tasks.values())
        return {
            "hard failures (options, paging, tempting)": stats.hard_failures,
            "hard failures that opened the target item": stats.reached_target_fraction,
        }

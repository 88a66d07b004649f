"""The one small interface every environment implements, and replay of recorded prefixes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pkgutil import resolve_name
from typing import Any, Self

from eef.types import Task, Trajectory


@dataclass(frozen=True)
class StepResult:
    observation: str
    reward: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


class Environment(ABC):
    """One episode at a time; an instance is reused across episodes via ``reset``.

    ``step`` never raises for a bad action: it answers with an observation that says
    what was wrong (``info["invalid"] = True``) so agents can recover, as WebShop does.
    A context manager: ``with suite.make() as env:`` closes it however the block ends (an instance
    can hold a process, e.g. a ScienceWorld JVM leased from its suite's pool).
    """

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abstractmethod
    def reset(self, task: Task) -> str:
        """Start ``task`` and return the first observation."""

    @abstractmethod
    def step(self, action: str) -> StepResult:
        """Apply one action of the current episode."""

    def close(self) -> None:
        """Release what the environment holds (processes, files)."""

    def fork(self) -> Environment | None:
        """A new, independent instance in this one's current state; None when the environment cannot
        copy its state (a simulator in another process), and restarts replay their prefix instead."""
        return None


class Suite(ABC):
    """An environment family: its tasks and splits, its agent instructions, its instances.

    ``instruction`` is the system prompt that tells an agent the action protocol;
    experts and policies share it so their trajectories look alike.
    """

    name: str
    instruction: str
    # How many instances may be alive at once (None: no limit). Rollouts cap the episodes they keep
    # in flight to it: an instance can be expensive (a ScienceWorld instance is a JVM of ~0.5 GB).
    max_concurrent_envs: int | None = None
    # True when an instance's step waits on another process (a simulator's JVM) without holding
    # Python's lock: rollouts then step their environments at once, in threads.
    concurrent_steps: bool = False

    @abstractmethod
    def splits(self) -> list[str]: ...

    @abstractmethod
    def tasks(self, split: str) -> list[Task]:
        """All tasks of ``split``; raises UserError for an unknown split."""

    @abstractmethod
    def make(self) -> Environment:
        """A fresh environment instance (callers close it)."""

    def is_success(self, reward: float) -> bool:
        return reward >= 1.0

    def atomic_terms(self) -> list[str]:
        """Strings a tokenizer built for this environment should keep whole (e.g. product ids)."""
        return []

    def difficulty_levels(self) -> list[str]:
        """Difficulty levels from easiest to hardest (for ordering tables)."""
        return []

    def expert_analysis(self, trajectories: list[Trajectory], tasks: dict[str, Task]) -> dict[str, float]:
        """Environment-specific figures about expert data (e.g. how far failures got)."""
        return {}


@dataclass(frozen=True)
class EnvEntry:
    """An environment as the registry lists it (:mod:`eef.envs.registry`).

    Its code is named by entry points, ``"package.module:attribute"`` strings imported only on use: listing
    the environments imports none of them, and neither the registry nor this layer imports an expert.
    """

    name: str
    description: str
    suite: str  # its Suite subclass, e.g. "eef.envs.shop.env:ShopSuite"
    # Its experts (`eef collect --expert NAME`, a run's `experts:`): a mapping of expert name -> a callable with
    # no arguments that makes that expert (an eef.experts.base.Expert), e.g.
    # "eef.experts.scripted_shop:SHOP_EXPERTS". None: no expert but chat models (openai:MODEL).
    experts: str | None = None
    # A callable with no arguments that says why the environment is not usable here (a missing Java, data
    # files), None when it is; None here: always usable.
    unavailable: str | None = None
    # Options that can make an environment usable that is not by default (e.g. where its data is):
    # when a caller passes one, the suite checks it instead and says what is wrong.
    data_options: tuple[str, ...] = ()

    def load(self) -> type[Suite]:
        """The suite's class (its module imported now)."""
        return resolve_name(self.suite)

    def unavailable_reason(self) -> str | None:
        """Why the environment is not usable here; None when it is."""
        return None if self.unavailable is None else resolve_name(self.unavailable)()

    def expert_factories(self) -> Mapping[str, Callable[[], Any]]:
        """The environment's experts by name, each a callable that makes one (none when it names no experts)."""
        return {} if self.experts is None else resolve_name(self.experts)


class ReplayDivergence(RuntimeError):
    """Replaying recorded actions did not reproduce the recorded observations."""


def restore(
    env: Environment,
    task: Task,
    actions: list[str],
    expected_observations: list[str] | None = None,
) -> tuple[str, StepResult | None]:
    """Reach the state after ``actions`` by reset + replay.

    Checks every replayed observation against ``expected_observations`` (one per
    action) when given, and raises :class:`ReplayDivergence` on the first mismatch:
    a restart from a state that is not the recorded one would silently poison the
    data built from it. Returns the observation at the reached state and the last
    step's result (None when ``actions`` is empty).
    """
    if expected_observations is not None and len(expected_observations) < len(actions):
        raise ValueError(f"{len(actions)} actions but only {len(expected_observations)} recorded observations")
    observation = env.reset(task)
    return _replay(env, task, actions, expected_observations, 0, len(actions), observation, None)


def restore_points(
    suite: Suite, task: Task, actions: list[str], expected_observations: list[str], indices: list[int]
) -> list[Environment]:
    """An environment at the state after ``actions[:index]`` for each of ``indices`` (any order,
    repeats allowed), checked as :func:`restore` checks. When the environment can ``fork``, the
    recorded actions are replayed once for all the points; otherwise once per point. When a replay
    fails, every environment made here is closed before the error propagates."""
    if len(expected_observations) < max(indices, default=0):
        raise ValueError(f"restart at action {max(indices)} but only {len(expected_observations)} observations")
    with ExitStack() as made:  # closes what was made unless pop_all() hands it to the caller
        replaying = made.enter_context(suite.make())
        probe = replaying.fork()
        if probe is None:  # one replay per point, the first in the instance already made
            environments = [replaying] + [made.enter_context(suite.make()) for _ in indices[1:]]
            for env, index in zip(environments, indices, strict=True):
                restore(env, task, actions[:index], expected_observations[:index])
            made.pop_all()
            return environments
        probe.close()
        observation, last, reached = replaying.reset(task), None, 0
        at: dict[int, list[Environment]] = {}
        for index in sorted(set(indices)):
            observation, last = _replay(
                replaying, task, actions, expected_observations, reached, index, observation, last
            )
            reached = index
            at[index] = [made.enter_context(_fork(replaying)) for _ in range(indices.count(index))]
        forks = [at[index].pop() for index in indices]
        made.pop_all()
    replaying.close()  # the forks carry on; the replaying instance is done
    return forks


def _fork(env: Environment) -> Environment:
    fork = env.fork()
    if fork is None:
        raise RuntimeError(f"{type(env).__name__}.fork() worked once, then returned None")
    return fork


def _replay(
    env: Environment,
    task: Task,
    actions: list[str],
    expected_observations: list[str] | None,
    begin: int,
    end: int,
    observation: str,
    last: StepResult | None,
) -> tuple[str, StepResult | None]:
    """Apply ``actions[begin:end]`` to ``env`` (already at the state after ``actions[:begin]``)."""
    for index in range(begin, end):
        action = actions[index]
        if last is not None and last.done:
            raise ReplayDivergence(f"task {task.task_id}: episode ended before action {index} ({action!r})")
        last = env.step(action)
        observation = last.observation
        if expected_observations is not None and observation != expected_observations[index]:
            raise ReplayDivergence(
                f"task {task.task_id}: observation after action {index} ({action!r}) differs from the recording:\n"
                f"  recorded: {expected_observations[index][:200]!r}\n  replayed: {observation[:200]!r}"
            )
    return observation, last

"""``counter``: a tiny environment defined outside eef, built as docs/extending.md describes.

The agent counts up to a target, one ``increment`` at a time, then ``submit``s: it wins when the counter
shows the target. Each split holds a few targets; 1 and 2 are ``easy``, 4 and 5 ``hard``. Two scripted
experts: ``steady`` counts exactly; ``overshooting`` counts one too far on hard targets, so it fails them
after making every right move but the last, the kind of failure EEF restarts from.
tests/envs/test_extending.py registers it (:data:`COUNTER`) and runs the `eef` commands on it.
"""

from __future__ import annotations

import re
from functools import partial

from eef.envs.base import EnvEntry, Environment, StepResult, Suite
from eef.errors import UserError
from eef.experts.base import Expert, ExpertEpisode
from eef.react import format_turn
from eef.types import Task

INSTRUCTION = (
    "You count up to a target. The counter starts at 0. Each turn, answer with one line 'Thought: <your "
    "reasoning>' and one line 'Action: <action>'. Actions: increment (adds one to the counter), submit (ends "
    "the episode; you win when the counter shows the target)."
)
TARGETS = {"train": [1, 4, 2, 5, 1, 4, 2, 5], "dev": [2, 4, 1, 5], "test": [1, 5, 2, 4]}
LEVELS = ["easy", "hard"]  # easiest first

# The one registry line (docs/extending.md): the suite and its experts, named by entry points.
COUNTER = EnvEntry(
    name="counter",
    description="count up to a target, then submit (a test environment: tests/envs/counter_env.py)",
    suite="tests.envs.counter_env:CounterSuite",
    experts="tests.envs.counter_env:EXPERTS",
)


def _observation(value: int, target: int) -> str:
    return f"The counter shows {value}; the target is {target}."


class CounterEnvironment(Environment):
    """One episode of counting. Deterministic: the same actions from ``reset`` give the same observations,
    which is what replaying an expert's prefix to a restart point needs (:func:`eef.envs.base.restore`)."""

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps
        self.target = self.value = self.steps = 0

    def reset(self, task: Task) -> str:
        self.target, self.value, self.steps = task.meta["target"], 0, 0
        return _observation(self.value, self.target)

    def step(self, action: str) -> StepResult:
        self.steps += 1
        if action == "submit":
            reward = 1.0 if self.value == self.target else 0.0
            return StepResult(f"You submitted {self.value}.", reward, done=True)
        invalid = action != "increment"
        if invalid:
            observation = f"Invalid action: {action}. {_observation(self.value, self.target)}"
        else:
            self.value += 1
            observation = _observation(self.value, self.target)
        if self.steps >= self.max_steps:  # the environment enforces its own step limit
            return StepResult(observation, 0.0, done=True, info={"termination": "step_limit", "invalid": invalid})
        return StepResult(observation, 0.0, done=False, info={"invalid": invalid})


class CounterSuite(Suite):
    """``counter``. Option: ``max_steps`` (per episode, e.g. ``--env-option max_steps=4``)."""

    name = "counter"
    instruction = INSTRUCTION

    def __init__(self, max_steps: int = 8) -> None:
        if not isinstance(max_steps, int) or max_steps < 1:
            raise UserError(f"counter option max_steps must be a positive integer, got {max_steps!r}")
        self.max_steps = max_steps

    def splits(self) -> list[str]:
        return list(TARGETS)

    def tasks(self, split: str) -> list[Task]:
        if split not in TARGETS:
            raise UserError(f"unknown split {split!r} for environment counter: choose one of {', '.join(TARGETS)}")
        return [
            Task(
                env=self.name,
                task_id=f"counter-{split}-{index}",
                split=split,
                instruction=f"Count to {target}.",
                difficulty="easy" if target <= 2 else "hard",
                meta={"target": target},
            )
            for index, target in enumerate(TARGETS[split])
        ]

    def make(self) -> CounterEnvironment:
        return CounterEnvironment(self.max_steps)

    def atomic_terms(self) -> list[str]:
        return ["increment", "submit"]

    def difficulty_levels(self) -> list[str]:
        return LEVELS


_SHOWN = re.compile(r"The counter shows (\d+); the target is (\d+)\.")


class CountingExpert(Expert):
    """Reads the counter and the target from each observation; with ``overshoot`` it counts one past a
    hard target (more than 2) before it submits."""

    def __init__(self, name: str, overshoot: bool) -> None:
        self.name = name
        self.overshoot = overshoot

    def start(self, task: Task, seed: int, env: Environment) -> ExpertEpisode:
        return _CountingEpisode(self.overshoot)


class _CountingEpisode(ExpertEpisode):
    def __init__(self, overshoot: bool) -> None:
        self.overshoot = overshoot

    def act(self, observation: str) -> str:
        value, target = (int(number) for number in _SHOWN.search(observation).groups())
        goal = target + 1 if self.overshoot and target > 2 else target
        if value < goal:
            return format_turn(f"The counter shows {value}, short of {goal}: I add one.", "increment")
        return format_turn(f"The counter shows {value}: I submit.", "submit")


# The experts by name (COUNTER.experts names this mapping): each value makes one expert.
EXPERTS = {
    "overshooting": partial(CountingExpert, "overshooting", overshoot=True),
    "steady": partial(CountingExpert, "steady", overshoot=False),
}

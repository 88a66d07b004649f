"""ScienceWorld experts that play the simulator's gold action path, perfectly or with slips.

Failure model (generic, one parameter): before each gold action, with chance ``slip_chance`` the expert
instead takes a *plausible wrong action*: one of the simulator's valid actions in the current state
(sorted, drawn uniformly) that starts with the same verb as the gold action (e.g. ``move metal pot to
stove`` for ``move metal pot to sink``, ``focus on`` another object, ``teleport to`` another room), or
any other valid action when none does. It then carries on with the gold action it was about to take, as
if nothing had happened. Most slips are harmless detours, some are not (an object moved or picked up
elsewhere, a wrong ``focus on``, which fails the task at once), and every slip costs a step of the task's
limit, so the longer a task's gold path, the more often the expert fails. When the gold path is spent
and the task is not done, the expert gives up (a turn with no action).

Every draw comes from the episode's ``random.Random(seed)``; the valid-action list (~100 ms) is asked
for only when a slip is drawn.
"""

from __future__ import annotations

import random
from functools import partial

from eef.envs.base import Environment
from eef.envs.sciworld.env import SciWorldEnvironment
from eef.errors import UserError
from eef.experts.base import Expert, ExpertEpisode
from eef.react import format_turn
from eef.types import Task

# Tuned on the first 96 train tasks (4 per task; docs/sciworld.md): 0.08 gave 68% success, 0.25 gave 34%;
# 0.2 aims at ~40%, GPT-4's rate in the EEF paper.
DEFAULT_SLIP_CHANCE = 0.2
# name -> slip chance: a perfect expert, the main one, and a weaker second source ("GPT-3&4" in EEF).
GOLD_EXPERTS: dict[str, float] = {
    "gold": 0.0,
    "gold-slips": DEFAULT_SLIP_CHANCE,
    "gold-slips-weak": 2 * DEFAULT_SLIP_CHANCE,
}

_THOUGHTS = {
    "teleport": "I should go to {rest}.",
    "go": "I should go to {rest}.",
    "open": "I need to open {rest}.",
    "close": "I should close {rest}.",
    "pick": "I need the {rest}; I will pick it up.",
    "move": "Next I move {rest}.",
    "pour": "Next I pour {rest}.",
    "focus": "This is the object the task is about, so I focus on {rest}.",
    "activate": "I need {rest} running, so I activate it.",
    "deactivate": "I should turn off {rest}.",
    "look": "I should look {rest} to see what is there.",
    "examine": "Let me examine {rest} closely.",
    "read": "Let me read {rest}.",
    "use": "I will use {rest}.",
    "connect": "I connect {rest}.",
    "disconnect": "I disconnect {rest}.",
    "mix": "Now I mix {rest}.",
    "wait": "I need to wait for things to change.",
    "wait1": "I need to wait a moment.",
}


def _verb(action: str) -> str:
    return action.split(" ", 1)[0]


def thought_for(action: str) -> str:
    verb, _, rest = action.partition(" ")
    if verb.isdigit():
        return f"The simulator asks which one I mean: option {verb} is the right one."
    template = _THOUGHTS.get(verb, "Next: {action}.")
    if verb in ("pick", "look", "focus", "teleport", "go") and " " in rest:
        rest = rest.split(" ", 1)[1]  # drop the particle: "pick up X" -> X
    return template.format(rest=rest or "around", action=action)


class GoldPathExpert(Expert):
    """Plays the gold path of the episode's variation, slipping with chance ``slip_chance`` per step."""

    def __init__(self, name: str = "gold", slip_chance: float = 0.0) -> None:
        if not 0.0 <= slip_chance <= 1.0:
            raise UserError(f"slip chance must be between 0 and 1, got {slip_chance}")
        self.name = name
        self.slip_chance = slip_chance

    def start(self, task: Task, seed: int, env: Environment) -> ExpertEpisode:
        if not isinstance(env, SciWorldEnvironment):
            raise UserError(f"expert {self.name!r} plays ScienceWorld gold paths: use it with --env sciworld")
        return _GoldPathEpisode(env.gold_path(), env, self.slip_chance, random.Random(seed))


# The experts of `sciworld` by name (its registry entry names this: eef.envs.builtin).
GOLD_PATH_EXPERTS = {name: partial(GoldPathExpert, name, slip_chance) for name, slip_chance in GOLD_EXPERTS.items()}


class _GoldPathEpisode(ExpertEpisode):
    def __init__(self, path: list[str], env: SciWorldEnvironment, slip_chance: float, rng: random.Random) -> None:
        self.path = path
        self.env = env
        self.slip_chance = slip_chance
        self.rng = rng
        self.next = 0  # index of the next gold action
        self.slips = 0

    def act(self, observation: str) -> str:
        if self.next >= len(self.path):
            return "Thought: I have done every step of my plan but the task is not complete. I give up."
        gold = self.path[self.next]
        if self.rng.random() < self.slip_chance:
            wrong = self._plausible_wrong_action(gold)
            if wrong is not None:
                self.slips += 1
                return format_turn(thought_for(wrong), wrong)
        self.next += 1
        return format_turn(thought_for(gold), gold)

    def _plausible_wrong_action(self, gold: str) -> str | None:
        # Sorted: the simulator's list order need not be stable across JVMs, the seeded draw must be.
        others = sorted(set(self.env.valid_actions()) - {gold})
        same_verb = [action for action in others if _verb(action) == _verb(gold)]
        candidates = same_verb or others
        return self.rng.choice(candidates) if candidates else None

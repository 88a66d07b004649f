"""What an expert is: something that plays one episode, turn by turn, in the ReAct format."""

from __future__ import annotations

from abc import ABC, abstractmethod

from eef.envs.base import Environment
from eef.types import Task


class ExpertEpisode(ABC):
    """An expert's state within one episode."""

    @abstractmethod
    def act(self, observation: str) -> str:
        """The next agent turn (``Thought: ...\\nAction: ...``) given the latest observation."""


class Expert(ABC):
    """A source of expert trajectories. ``name`` tags them (``origin = "expert:<name>"``)."""

    name: str

    @abstractmethod
    def start(self, task: Task, seed: int, env: Environment) -> ExpertEpisode:
        """Begin an episode of ``task``; every random choice in it derives from ``seed``.

        ``env`` is the episode's environment, already reset to ``task``: most experts only read
        observations, but one that plays the simulator's own moves (e.g. a gold path with
        deliberate slips among the valid actions) may query it."""

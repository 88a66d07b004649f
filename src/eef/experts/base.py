"""What an expert is: something that plays one episode, turn by turn, in the ReAct format."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from eef.envs.base import Environment
from eef.types import Message, Task


class ExpertUnavailable(RuntimeError):
    """The expert could not produce a turn (e.g. its API kept failing after every retry).

    The episode is not recorded: collection lists it with this message and goes on with the
    others, and a rerun of the same command plays it again."""


class ExpertEpisode:
    """An expert's state within one episode.

    A scripted expert implements ``act`` (it reads the latest observation); one that reads the
    whole conversation and waits on I/O, such as a chat model behind an API, overrides ``reply``.
    ``prompt_tokens`` and ``generated_tokens`` count what the episode's turns cost (0 when free);
    ``prefilled_tokens``, the prompt tokens the server computed (the rest came from its prompt cache).
    """

    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    generated_tokens: int = 0

    def act(self, observation: str) -> str:
        """The next agent turn (``Thought: ...\\nAction: ...``) given the latest observation."""
        raise NotImplementedError(f"{type(self).__name__} implements neither act nor reply")

    async def reply(self, messages: Sequence[Message]) -> str:
        """The next agent turn given the conversation so far (its last message is the latest observation)."""
        return self.act(messages[-1].content)


class Expert(ABC):
    """A source of expert trajectories. ``name`` tags them (``origin = "expert:<name>"``).

    Episode rules: with ``max_invalid_turns`` None, a turn that names no action ends the episode
    (``gave_up``: scripted experts stop that way on purpose). With a number, such a turn is answered
    with the student's invalid-turn observation and the episode goes on, as the student's rollouts do,
    until that many invalid actions in a row (``invalid_limit``) or ``max_turns`` turns (``step_limit``).
    ``concurrency`` is how many episodes may be in flight at once."""

    name: str
    max_invalid_turns: int | None = None
    max_turns: int | None = None
    concurrency: int = 1

    @abstractmethod
    def start(self, task: Task, seed: int, env: Environment) -> ExpertEpisode:
        """Begin an episode of ``task``; every random choice in it derives from ``seed``.

        ``env`` is the episode's environment, already reset to ``task``: most experts only read
        observations, but one that plays the simulator's own moves (e.g. a gold path with
        deliberate slips among the valid actions) may query it."""

    @asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """What the expert holds while a collection runs (e.g. an HTTP client); nothing by default."""
        yield

    def usage(self) -> dict[str, Any]:
        """What this collection spent (requests, tokens, cost) for its summary; empty when free."""
        return {}

    def cost_usd(self, prompt_tokens: int, generated_tokens: int, cached_prompt_tokens: int = 0) -> float | None:
        """What that many tokens cost, in USD (``cached_prompt_tokens`` of the prompt tokens came from
        the server's prompt cache); None when the expert has no price."""
        return None

"""Plain typed records shared by every stage: tasks, messages, trajectories, where an episode starts,
preference pairs.

On disk a trajectory is one JSON line in ShareGPT form (``conversations`` of
``from``/``value``/``loss``), the form AgentGym's AgentTraj-L and ETO use, so that
public data and ours read alike. :mod:`eef.storage` reads and writes these files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

Role = Literal["system", "user", "assistant"]

# ShareGPT speaker names <-> chat roles.
_ROLE_FROM_SPEAKER = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
_SPEAKER_FROM_ROLE = {"system": "system", "user": "human", "assistant": "gpt"}


class Task(BaseModel):
    """One subtask of an environment: what the agent is asked to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str
    task_id: str
    split: str
    instruction: str
    difficulty: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One chat turn. ``loss`` says whether training puts loss on it (agent turns only)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    role: Role = Field(alias="from")
    content: str = Field(alias="value")
    loss: bool = False

    @field_validator("role", mode="before")
    @classmethod
    def _speaker_to_role(cls, value: object) -> object:
        if not isinstance(value, str) or value not in _ROLE_FROM_SPEAKER:
            # Name the on-disk speakers: a user fixing a file sees those, not our internal roles.
            raise ValueError(f"a turn's 'from' must be system, human or gpt, got {value!r}")
        return _ROLE_FROM_SPEAKER[value]

    @field_validator("loss", mode="before")
    @classmethod
    def _null_loss_is_false(cls, value: object) -> object:
        # AgentGym writes ``"loss": null`` on human turns.
        return False if value is None else value

    @field_serializer("role")
    def _role_to_speaker(self, role: Role) -> str:
        return _SPEAKER_FROM_ROLE[role]


class StartState(BaseModel):
    """Where an episode started: the task's initial state, or after replaying
    the first ``action_index`` actions of an expert trajectory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expert_trajectory_id: str | None = None
    action_index: int = Field(default=0, ge=0)

    @property
    def is_initial(self) -> bool:
        return self.expert_trajectory_id is None


Termination = Literal[
    "success",  # the episode ended with the environment's success criterion met
    "done",  # the episode ended (e.g. bought something) without success
    "step_limit",
    "context_limit",
    "invalid_limit",
    "gave_up",  # the agent stopped acting
]


class Trajectory(BaseModel):
    """One episode: the whole conversation plus what came of it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    env: str
    task_id: str
    messages: list[Message] = Field(alias="conversations")
    reward: float
    success: bool
    origin: str  # "expert:<name>" or "policy:<checkpoint>"
    start: StartState = Field(default_factory=StartState)
    termination: Termination
    num_actions: int = Field(ge=0)
    seed: int
    difficulty: str = ""
    prompt_tokens: int = 0  # the prompts' lengths, summed over turns
    prefilled_tokens: int = 0  # of those, the tokens the model actually ran (the rest came from a cache)
    generated_tokens: int = 0
    meta: dict[str, Any] = Field(default_factory=dict)

    def agent_turns(self) -> list[str]:
        return [m.content for m in self.messages if m.role == "assistant"]

    def observations(self) -> list[str]:
        """Observation after each agent turn (the user turn that follows it)."""
        result = []
        for before, after in zip(self.messages, self.messages[1:], strict=False):
            if before.role == "assistant" and after.role == "user":
                result.append(after.content)
        return result


@dataclass(frozen=True)
class EpisodeStart:
    """Where one episode begins: ``source`` is the recorded trajectory to restart from (None: initial state)."""

    task: Task
    source: Trajectory | None = None
    action_index: int = 0
    sample: int = 0  # distinguishes repeated rollouts from the same start

    @property
    def start_state(self) -> StartState:
        if self.source is None:
            return StartState()
        return StartState(expert_trajectory_id=self.source.id, action_index=self.action_index)

    @property
    def key(self) -> str:
        state = "s0" if self.source is None else f"{self.source.id}@{self.action_index}"
        return f"{self.task.task_id}|{state}|{self.sample}"


class PreferencePair(BaseModel):
    """One ETO preference pair (``eef.methods.eto``): a shared prompt and two continuations, the better one chosen.

    On disk (one JSON line per pair) messages are ShareGPT turns (``from``/``value``/``loss``), as in
    trajectory files and ETO's own preference files.

    Example:
        A rollout (reward 0.2) that lost to the expert (reward 1.0) on task ``t1``::

            PreferencePair(id="pair:policy:p/t1", task_id="t1", prompt=[system, first_observation],
                           chosen=expert_turns, rejected=rollout_turns, chosen_reward=1.0,
                           rejected_reward=0.2, expert_side="chosen", expert_id="expert:x/t1",
                           rollout_id="policy:p/t1")
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    """``pair:`` and the rollout's id: one pair per rollout at most."""
    task_id: str
    """The task both sides played."""
    prompt: list[Message]
    """The messages both sides share: those before the chosen side's first agent turn."""
    chosen: list[Message]
    """The better side, from its first agent turn to its last."""
    rejected: list[Message]
    """The worse side, likewise (a losing rollout cut to the chosen side's agent turns + a few)."""
    chosen_reward: float
    rejected_reward: float
    expert_side: Literal["chosen", "rejected"]
    """Which side is the expert trajectory; the rollout is the other."""
    expert_id: str
    rollout_id: str
    rejected_cut_turns: int = Field(default=0, ge=0)
    """Agent turns cut from the end of the rejected side."""

    @model_validator(mode="after")
    def _shape(self) -> PreferencePair:
        if not self.prompt or self.prompt[-1].role == "assistant":
            raise ValueError("prompt must be the messages before the first agent turn (ending with an observation)")
        for side in ("chosen", "rejected"):
            turns = getattr(self, side)
            if not turns or turns[0].role != "assistant" or turns[-1].role != "assistant":
                raise ValueError(f"{side} must begin and end with an agent (gpt) turn")
        if self.chosen_reward <= self.rejected_reward:
            raise ValueError("chosen_reward must be above rejected_reward")
        return self

"""Plain typed records shared by every stage: tasks, messages, trajectories, where an episode starts.

On disk a trajectory is one JSON line in ShareGPT form (``conversations`` of
``from``/``value``/``loss``), the form AgentGym's AgentTraj-L and ETO use, so that
public data and ours read alike. :mod:`eef.storage` reads and writes these files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

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

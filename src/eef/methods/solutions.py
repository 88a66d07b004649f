"""EEF's bookkeeping, as pure functions over trajectories: steps 2-7 of docs/runs.md, "The algorithm as built".

Restart points of a failed expert trajectory -> positive repository -> harmful segments and
recovery states -> important states -> one selected solution per important state.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from eef.types import Message, Trajectory

SelectionRule = Literal["shortest", "random"]
StateKind = Literal["initial", "recovery"]


def restart_points(num_actions: int, m: int) -> list[int]:
    """The M evenly spaced restart points k*l, l = max(1, floor(L/(M+1))), k = 1..M.

    Points are action counts: restarting at k*l means replaying the first k*l expert
    actions. Deduplicated, and only points before the trajectory's end (the state after
    the last action is terminal)."""
    if m <= 0 or num_actions <= 1:
        return []
    spacing = max(1, num_actions // (m + 1))
    return sorted({k * spacing for k in range(1, m + 1) if k * spacing < num_actions})


StateKey = tuple[str, str | None, int]  # (task id, expert trajectory id or None for s0, action index)


def state_key(trajectory: Trajectory) -> StateKey:
    start = trajectory.start
    return (trajectory.task_id, start.expert_trajectory_id, start.action_index)


@dataclass
class PositiveRepository:
    """Every successful rollout, indexed by the state it started from; kept across iterations."""

    by_state: dict[StateKey, list[Trajectory]] = field(default_factory=lambda: defaultdict(list))
    _ids: set[str] = field(default_factory=set)

    def add(self, trajectories: Iterable[Trajectory]) -> int:
        added = 0
        for trajectory in trajectories:
            if trajectory.success and trajectory.id not in self._ids:
                self._ids.add(trajectory.id)
                self.by_state[state_key(trajectory)].append(trajectory)
                added += 1
        return added

    def successes(self, task_id: str, expert_id: str | None, action_index: int) -> list[Trajectory]:
        if action_index == 0:
            expert_id = None  # replaying zero actions is the initial state
        return self.by_state.get((task_id, expert_id, action_index), [])

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True)
class FailureAnalysis:
    """What the positive repository says about one failed expert trajectory."""

    expert: Trajectory
    points: list[int]  # 0 (initial state) followed by the restart points
    solved: list[bool]  # solved[j]: some rollout from points[j] succeeded

    @property
    def harmful_segments(self) -> list[int]:
        """Indices j such that the expert actions between points[j] and points[j+1] are harmful."""
        return [j for j in range(len(self.points) - 1) if self.solved[j] and not self.solved[j + 1]]

    @property
    def recovery_indices(self) -> list[int]:
        return [j + 1 for j in self.harmful_segments]

    def clean_between(self, first: int, last: int) -> bool:
        """No harmful segment among the segments first -> ... -> last (indices into points)."""
        return not any(first <= j < last for j in self.harmful_segments)


def analyse_failure(expert: Trajectory, m: int, repository: PositiveRepository) -> FailureAnalysis:
    points = [0, *restart_points(expert.num_actions, m)]
    solved = [bool(repository.successes(expert.task_id, expert.id, point)) for point in points]
    return FailureAnalysis(expert=expert, points=points, solved=solved)


@dataclass(frozen=True)
class Candidate:
    """A solution for one important state: the trajectory to train on, and how it was built."""

    trajectory: Trajectory
    state: StateKind
    trained_turns: int
    trained_expert_actions: int


def _with_trained_expert_turns(rollout: Trajectory, from_action: int, to_action: int) -> list[Message]:
    """The rollout's messages with loss turned on for the recorded agent turns in [from_action, to_action)."""
    messages, action = [], 0
    for message in rollout.messages:
        if message.role == "assistant":
            if from_action <= action < to_action:
                message = message.model_copy(update={"loss": True})
            action += 1
        messages.append(message)
    return messages


def _candidate(rollout: Trajectory, state: StateKind, anchor: str, train_from: int, train_to: int) -> Candidate:
    messages = _with_trained_expert_turns(rollout, train_from, train_to)
    trajectory = rollout.model_copy(
        update={
            "id": f"solution:{anchor}:{rollout.id}",
            "messages": messages,
            "meta": {**rollout.meta, "important_state": state, "anchor": anchor, "source": rollout.id},
        }
    )
    return Candidate(
        trajectory=trajectory,
        state=state,
        trained_turns=sum(m.loss for m in messages if m.role == "assistant"),
        trained_expert_actions=max(0, train_to - train_from),
    )


def initial_state_candidates(
    task_id: str, failures: list[FailureAnalysis], repository: PositiveRepository
) -> list[Candidate]:
    """The policy's own successes from s0, plus, for each failed expert trajectory of the task,
    a clean expert prefix (no harmful segment) up to a restart point + the policy's success from there.
    Everything is trained: this is how beneficial expert actions enter the data."""
    anchor = f"{task_id}@s0"
    found = [_candidate(r, "initial", anchor, 0, 0) for r in repository.successes(task_id, None, 0)]
    for failure in failures:
        for j, point in enumerate(failure.points[1:], start=1):
            if failure.clean_between(0, j):
                for rollout in repository.successes(task_id, failure.expert.id, point):
                    found.append(_candidate(rollout, "initial", anchor, 0, point))
    return found


def recovery_state_candidates(failure: FailureAnalysis, index: int, repository: PositiveRepository) -> list[Candidate]:
    """Solutions for the recovery state points[index]: the policy's success from there, or the
    expert's actions up to a later restart point (no harmful segment between) + the policy's
    success from that point. The expert history before the recovery state stays untrained context."""
    task_id, expert_id = failure.expert.task_id, failure.expert.id
    recovery = failure.points[index]
    anchor = f"{expert_id}@{recovery}"
    found = [_candidate(r, "recovery", anchor, 0, 0) for r in repository.successes(task_id, expert_id, recovery)]
    for j in range(index + 1, len(failure.points)):
        if failure.clean_between(index, j):
            for rollout in repository.successes(task_id, expert_id, failure.points[j]):
                found.append(_candidate(rollout, "recovery", anchor, recovery, failure.points[j]))
    return found


def select(candidates: list[Candidate], rule: SelectionRule, rng: random.Random) -> Candidate:
    """One solution per important state. ``shortest``: fewest trained turns, ties -> fewest
    trained expert actions, then id (deterministic). ``random``: a seeded uniform choice."""
    ordered = sorted(candidates, key=lambda c: (c.trained_turns, c.trained_expert_actions, c.trajectory.id))
    return ordered[0] if rule == "shortest" else rng.choice(ordered)


def train_everything(trajectory: Trajectory) -> Trajectory:
    """The ablation without harmful-action masking: loss on every agent turn."""
    messages = [m.model_copy(update={"loss": True}) if m.role == "assistant" else m for m in trajectory.messages]
    return trajectory.model_copy(update={"messages": messages})

"""ETO's preference data (Song et al. 2024, "Trial and Error"), as pure bookkeeping over trajectories.

Each iteration the current model explores every training task from its start; each rollout is paired
with the expert trajectory of its task, as ETO's ``construct_preference.py`` does:

- rollout reward < expert reward: the expert trajectory is *chosen*, the rollout *rejected*, and the
  rollout is cut to the expert's agent turns plus ``extra_turns`` (ETO: 5), since failures run on far
  longer than successes;
- rollout reward > expert reward: roles swap (the rollout is chosen, the expert trajectory rejected,
  whole, as in ETO);
- equal rewards: no pair.

A pair's *prompt* is the chosen trajectory's messages before its first agent turn (the instruction as
the system message and the task's first observation), which both sides share; *chosen* and *rejected*
are the rest of each conversation from the first agent turn to the last one (a trailing observation
carries no agent token and is dropped, as in ETO). DPO (:mod:`eef.training.dpo`) scores the agent
turns of both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eef.storage import read_jsonl, write_jsonl
from eef.types import Message, PreferencePair, Trajectory

# ETO lets a failed rollout exceed the success it is paired with by at most 5 rounds (construct_preference.py).
ETO_EXTRA_TURNS = 5


@dataclass
class Pairing:
    """The pairs of one iteration and what happened to every rollout (ETO prints win/tie/lose)."""

    pairs: list[PreferencePair] = field(default_factory=list)
    expert_better: int = 0  # ETO's "lose": the expert trajectory is chosen
    rollout_better: int = 0  # ETO's "win": the rollout is chosen
    ties: int = 0  # equal rewards: no pair
    without_expert: int = 0  # rollouts of tasks with no expert trajectory: no pair
    without_agent_turn: int = 0  # pairs dropped because one side has no agent turn
    cut: int = 0  # pairs whose rejected rollout was cut to the chosen length + extra turns

    def counts(self) -> dict[str, int]:
        """How many pairs, and what happened to every rollout (a run's ``pairs.json``)."""
        return {
            "pairs": len(self.pairs),
            "expert_better": self.expert_better,
            "rollout_better": self.rollout_better,
            "ties": self.ties,
            "without_expert": self.without_expert,
            "without_agent_turn": self.without_agent_turn,
            "cut": self.cut,
        }


def build_pairs(
    rollouts: Iterable[Trajectory], expert_trajectories: Iterable[Trajectory], extra_turns: int = ETO_EXTRA_TURNS
) -> Pairing:
    """Pair each rollout with the expert trajectory of its task, by reward (see the module docstring).

    Args:
        rollouts: the current model's trajectories from task starts; several per task are allowed,
            each gives its own pair.
        expert_trajectories: at most one per task (ETO pairs with its SFT data, the expert's
            successes); a task without one yields no pairs.
        extra_turns: how many agent turns a rejected rollout may have beyond the chosen expert
            trajectory's; the rest is cut.

    Returns:
        The pairs in the order of ``rollouts``, and the counts of each outcome.

    Raises:
        ValueError: a rollout that did not start from its task's initial state (ETO explores from
            starts only), or two expert trajectories for one task.
    """
    if extra_turns < 0:
        raise ValueError(f"extra_turns must be >= 0, got {extra_turns}")
    experts: dict[str, Trajectory] = {}
    for expert in expert_trajectories:
        if expert.task_id in experts:
            raise ValueError(
                f"task {expert.task_id} has two expert trajectories ({experts[expert.task_id].id}, {expert.id}); "
                "ETO pairs each rollout with one: pass one per task"
            )
        experts[expert.task_id] = expert

    result = Pairing()
    for rollout in rollouts:
        if not rollout.start.is_initial:
            raise ValueError(
                f"rollout {rollout.id} did not start from its task's initial state; ETO explores from initial states"
            )
        expert = experts.get(rollout.task_id)
        if expert is None:
            result.without_expert += 1
            continue
        if rollout.reward == expert.reward:
            result.ties += 1
            continue
        expert_better = rollout.reward < expert.reward
        if expert_better:
            result.expert_better += 1
        else:
            result.rollout_better += 1
        chosen, rejected = (expert, rollout) if expert_better else (rollout, expert)
        prompt, chosen_turns = _split(chosen.messages)
        _, rejected_turns = _split(rejected.messages)
        if not chosen_turns or not rejected_turns:
            result.without_agent_turn += 1
            continue
        cut_turns = 0
        if expert_better:  # ETO cuts the losing rollout only; a losing expert trajectory stays whole
            rejected_turns, cut_turns = _cut(rejected_turns, _agent_turns(chosen_turns) + extra_turns)
            if cut_turns:
                result.cut += 1
        result.pairs.append(
            PreferencePair(
                id=f"pair:{rollout.id}",
                task_id=rollout.task_id,
                prompt=prompt,
                chosen=chosen_turns,
                rejected=rejected_turns,
                chosen_reward=chosen.reward,
                rejected_reward=rejected.reward,
                expert_side="chosen" if expert_better else "rejected",
                expert_id=expert.id,
                rollout_id=rollout.id,
                rejected_cut_turns=cut_turns,
            )
        )
    return result


def _split(messages: Sequence[Message]) -> tuple[list[Message], list[Message]]:
    """(messages before the first agent turn, the rest up to the last agent turn)."""
    agent = [i for i, m in enumerate(messages) if m.role == "assistant"]
    if not agent:
        return list(messages), []
    return list(messages[: agent[0]]), list(messages[agent[0] : agent[-1] + 1])


def _agent_turns(messages: Sequence[Message]) -> int:
    return sum(m.role == "assistant" for m in messages)


def _cut(turns: list[Message], keep: int) -> tuple[list[Message], int]:
    """The messages up to the ``keep``-th agent turn (``keep`` >= 1), and how many agent turns were dropped."""
    agent = [i for i, m in enumerate(turns) if m.role == "assistant"]
    if len(agent) <= keep:
        return turns, 0
    return turns[: agent[keep - 1] + 1], len(agent) - keep


def write_pairs(path: Path, pairs: Iterable[PreferencePair]) -> int:
    """Write one JSON line per pair (atomically); returns the count."""
    return write_jsonl(path, pairs)


def read_pairs(path: Path) -> list[PreferencePair]:
    """The validated pairs of ``path``; a bad line is a one-line :class:`~eef.errors.UserError` naming file and line."""
    return read_jsonl(path, PreferencePair)

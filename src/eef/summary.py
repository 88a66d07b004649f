"""Summaries of a set of trajectories: win rate, reward and actions, overall and by difficulty."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pydantic import BaseModel

from eef.types import Trajectory


class GroupStats(BaseModel):
    episodes: int
    successes: int
    win_rate: float
    mean_reward: float
    mean_actions: float


class Summary(BaseModel):
    overall: GroupStats
    by_difficulty: dict[str, GroupStats]
    terminations: dict[str, int]


def _stats(trajectories: list[Trajectory]) -> GroupStats:
    n = len(trajectories)
    successes = sum(t.success for t in trajectories)
    return GroupStats(
        episodes=n,
        successes=successes,
        win_rate=successes / n if n else 0.0,
        mean_reward=sum(t.reward for t in trajectories) / n if n else 0.0,
        mean_actions=sum(t.num_actions for t in trajectories) / n if n else 0.0,
    )


def summarize(trajectories: Iterable[Trajectory], difficulty_order: list[str] | None = None) -> Summary:
    """Stats overall and per difficulty level (in ``difficulty_order`` when given)."""
    items = list(trajectories)
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    terminations: dict[str, int] = defaultdict(int)
    for trajectory in items:
        groups[trajectory.difficulty or "-"].append(trajectory)
        terminations[trajectory.termination] += 1
    order = [d for d in (difficulty_order or []) if d in groups] + sorted(set(groups) - set(difficulty_order or []))
    return Summary(
        overall=_stats(items),
        by_difficulty={level: _stats(groups[level]) for level in order},
        terminations=dict(sorted(terminations.items())),
    )

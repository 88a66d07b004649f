"""Figures that show whether shop expert data has the shape EEF needs: success by difficulty, and how
often failures on hard goals got as far as the target item's page before going wrong."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from eef.envs.shop.goals import HARD_DIFFICULTIES
from eef.react import parse_action
from eef.types import Task, Trajectory


@dataclass(frozen=True)
class LevelStats:
    episodes: int
    success_rate: float
    mean_actions: float


@dataclass(frozen=True)
class ShopExpertStats:
    episodes: int
    success_rate: float
    mean_actions: float
    by_difficulty: dict[str, LevelStats] = field(default_factory=dict)
    hard_failures: int = 0
    hard_failures_reached_target: int = 0

    @property
    def reached_target_fraction(self) -> float:
        """Share of failures on hard goals whose trajectory opened the goal's target item."""
        return self.hard_failures_reached_target / self.hard_failures if self.hard_failures else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "episodes": self.episodes,
            "success_rate": self.success_rate,
            "mean_actions": self.mean_actions,
            "by_difficulty": {level: vars(stats) for level, stats in self.by_difficulty.items()},
            "hard_difficulties": list(HARD_DIFFICULTIES),
            "hard_failures": self.hard_failures,
            "hard_failures_reached_target": self.hard_failures_reached_target,
            "reached_target_fraction": self.reached_target_fraction,
        }


def reached_target(trajectory: Trajectory, target_asin: str) -> bool:
    """Whether the trajectory clicked the target product (opened its item page)."""
    click = f"click[{target_asin}]".lower()
    return any((parse_action(turn) or "").lower() == click for turn in trajectory.agent_turns())


def shop_expert_stats(trajectories: Iterable[Trajectory], tasks: Iterable[Task]) -> ShopExpertStats:
    """Statistics of shop ``trajectories``; ``tasks`` must include each trajectory's task."""
    targets = {task.task_id: task.meta["goal"]["asin"] for task in tasks}
    by_level: dict[str, list[Trajectory]] = defaultdict(list)
    hard_failures = reached = 0
    episodes: list[Trajectory] = []
    for trajectory in trajectories:
        episodes.append(trajectory)
        by_level[trajectory.difficulty].append(trajectory)
        if not trajectory.success and trajectory.difficulty in HARD_DIFFICULTIES:
            hard_failures += 1
            reached += reached_target(trajectory, targets[trajectory.task_id])
    return ShopExpertStats(
        episodes=len(episodes),
        success_rate=_success_rate(episodes),
        mean_actions=_mean_actions(episodes),
        by_difficulty={
            level: LevelStats(len(group), _success_rate(group), _mean_actions(group))
            for level, group in sorted(by_level.items())
        },
        hard_failures=hard_failures,
        hard_failures_reached_target=reached,
    )


def _success_rate(trajectories: list[Trajectory]) -> float:
    return sum(t.success for t in trajectories) / len(trajectories) if trajectories else 0.0


def _mean_actions(trajectories: list[Trajectory]) -> float:
    return sum(t.num_actions for t in trajectories) / len(trajectories) if trajectories else 0.0

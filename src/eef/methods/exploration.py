"""One iteration of RFT / EEF exploration and data building (DESIGN.md "The algorithm", step 2).

RFT is the special case with no restarts: it explores from initial states only, and its
important states are the initial states.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from eef.config import MethodConfig
from eef.methods.solutions import (
    Candidate,
    FailureAnalysis,
    PositiveRepository,
    analyse_failure,
    initial_state_candidates,
    recovery_state_candidates,
    restart_points,
    select,
    train_everything,
)
from eef.rollout import EpisodeStart
from eef.seeding import derive_seed
from eef.types import Task, Trajectory


def exploration_starts(method: MethodConfig, tasks: list[Task], failures: list[Trajectory]) -> list[EpisodeStart]:
    """K rollouts from each task's initial state; for EEF also one from each restart point of
    each failed expert trajectory."""
    starts = [EpisodeStart(task, sample=k) for task in tasks for k in range(method.k)]
    if method.kind == "eef":
        by_id = {task.task_id: task for task in tasks}
        for failure in failures:
            task = by_id.get(failure.task_id)
            if task is not None:
                for point in restart_points(failure.num_actions, method.m):
                    starts.append(EpisodeStart(task, source=failure, action_index=point))
    return starts


@dataclass
class TrainingSet:
    trajectories: list[Trajectory]
    composition: dict[str, int]  # expert successes, solutions from initial and from recovery states
    important_states: dict[str, int]  # initial and recovery states, and how many have a solution
    solved_tasks: list[str] = field(default_factory=list)  # tasks whose initial state has training data


def build_training_set(
    method: MethodConfig,
    tasks: list[Task],
    expert_successes: list[Trajectory],
    failures: list[Trajectory],
    repository: PositiveRepository,
    seed: int,
) -> TrainingSet:
    """D_i = expert successes + one selected solution per important state that has one."""
    rng = random.Random(seed)
    analyses: dict[str, list[FailureAnalysis]] = defaultdict(list)
    if method.kind == "eef":
        for failure in failures:
            analyses[failure.task_id].append(analyse_failure(failure, method.m, repository))

    selected: list[Candidate] = []
    states = Counter()
    for task in tasks:
        states["initial"] += 1
        candidates = initial_state_candidates(task.task_id, analyses[task.task_id], repository)
        if candidates:
            selected.append(select(candidates, method.selection, rng))
        if not method.recovery_states:
            continue
        for analysis in analyses[task.task_id]:
            for index in analysis.recovery_indices:
                states["recovery"] += 1
                candidates = recovery_state_candidates(analysis, index, repository)
                if candidates:
                    selected.append(select(candidates, method.selection, rng))

    solutions = [c.trajectory for c in selected]
    if not method.mask_harmful:
        solutions = [train_everything(t) for t in solutions]
    chosen: dict[str, Trajectory] = {t.id: t for t in expert_successes}
    for solution in solutions:
        chosen.setdefault(solution.id, solution)
    composition = Counter(c.state for c in selected)
    solved = {t.task_id for t in expert_successes} | {c.trajectory.task_id for c in selected if c.state == "initial"}
    return TrainingSet(
        trajectories=list(chosen.values()),
        composition={
            "expert_successes": len(expert_successes),
            "from_initial_states": composition["initial"],
            "from_recovery_states": composition["recovery"],
        },
        important_states={
            "initial": states["initial"],
            "recovery": states["recovery"],
            "initial_with_solution": composition["initial"],
            "recovery_with_solution": composition["recovery"],
        },
        solved_tasks=sorted(solved),
    )


def restart_position_rates(rollouts: list[Trajectory], failures: list[Trajectory], m: int) -> dict[str, float]:
    """Success rate of this iteration's rollouts by start: ``s0`` and restart position j = 1..M."""
    position: dict[tuple[str, int], int] = {}
    for failure in failures:
        for j, point in enumerate(restart_points(failure.num_actions, m), start=1):
            position[(failure.id, point)] = j
    outcomes: dict[str, list[bool]] = defaultdict(list)
    for rollout in rollouts:
        start = rollout.start
        name = "s0" if start.is_initial else f"s{position.get((start.expert_trajectory_id, start.action_index), '?')}"
        outcomes[name].append(rollout.success)
    return {name: sum(v) / len(v) for name, v in sorted(outcomes.items())}


def rollout_seed(seed: int, method: str, iteration: int, chunk: int) -> int:
    return derive_seed(seed, "explore", method, iteration, chunk)

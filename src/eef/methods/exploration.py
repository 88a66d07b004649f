"""One iteration of RFT / EEF exploration and data building: steps 2-7 of docs/runs.md, "The algorithm as built".

RFT is the special case with no restarts: it explores from initial states only, and its
important states are the initial states.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from eef.config import MethodConfig, RunConfig, SFTSettings
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
from eef.seeding import derive_seed
from eef.types import EpisodeStart, Task, Trajectory


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
    # Of those, the tasks without an expert success: what the expert's data alone never teaches (RFT's
    # blind spot where the policy cannot solve them from the start, the paper's point).
    newly_solved_tasks: list[str] = field(default_factory=list)
    # The selected solutions by difficulty level and by where their policy part started: "s0" (the
    # policy's own success from the task's start), "restart" (a clean expert prefix + the policy's
    # success from a restart point, for an initial state), "recovery" (for a recovery state).
    solutions_by_level: dict[str, dict[str, int]] = field(default_factory=dict)


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

    chosen: dict[str, Trajectory] = {t.id: t for t in expert_successes}
    level_of = {task.task_id: task.difficulty or "-" for task in tasks}
    by_level: dict[str, Counter[str]] = defaultdict(Counter)
    for candidate in selected:
        solution = candidate.trajectory if method.mask_harmful else train_everything(candidate.trajectory)
        if solution.id not in chosen:
            chosen[solution.id] = solution
            by_level[level_of[solution.task_id]][_solution_start(candidate)] += 1
    composition = Counter(c.state for c in selected)
    expert_solved = {t.task_id for t in expert_successes}
    solved = expert_solved | {c.trajectory.task_id for c in selected if c.state == "initial"}
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
        newly_solved_tasks=sorted(solved - expert_solved),
        solutions_by_level={level: dict(by_level[level]) for level in sorted(by_level)},
    )


def _solution_start(candidate: Candidate) -> str:
    if candidate.state == "recovery":
        return "recovery"
    return "s0" if candidate.trajectory.start.is_initial else "restart"


StartCounts = dict[str, dict[str, dict[str, int]]]  # level -> start (s0, s1, ...) -> episodes, successes
ALL_LEVELS = "all"


def success_by_start(rollouts: list[Trajectory], failures: list[Trajectory], m: int) -> StartCounts:
    """Rollouts and successes by difficulty level (and ``all``) and by start: ``s0`` the task's start,
    ``sj`` the j-th restart point of a failed expert trajectory (step 2 of docs/runs.md, "The algorithm
    as built"). Counts, not rates, so that levels and iterations can be pooled."""
    position: dict[tuple[str, int], int] = {}
    for failure in failures:
        for j, point in enumerate(restart_points(failure.num_actions, m), start=1):
            position[(failure.id, point)] = j
    counts: StartCounts = defaultdict(lambda: defaultdict(lambda: {"episodes": 0, "successes": 0}))
    for rollout in rollouts:
        start = rollout.start
        name = "s0" if start.is_initial else f"s{position.get((start.expert_trajectory_id, start.action_index), '?')}"
        for level in (rollout.difficulty or "-", ALL_LEVELS):
            counts[level][name]["episodes"] += 1
            counts[level][name]["successes"] += rollout.success
    return {level: {name: dict(by_start[name]) for name in sorted(by_start, key=start_order)}
            for level, by_start in counts.items()}  # fmt: skip


def start_order(name: str) -> tuple[int, str]:
    """Sort key of start names: s0, s1, ..., s9, s10."""
    return (len(name), name)


def levels_in_order(levels: Iterable[str]) -> list[str]:
    """Difficulty levels in name order, with the pooled :data:`ALL_LEVELS` last."""
    return sorted(levels, key=lambda name: (name == ALL_LEVELS, name))


def rates(by_start: dict[str, dict[str, int]]) -> dict[str, float]:
    """Success rate per start of one level's counts."""
    return {name: c["successes"] / c["episodes"] for name, c in by_start.items() if c["episodes"]}


def best_restart(by_start: dict[str, dict[str, int]]) -> str | None:
    """The restart position (not s0) with the highest success rate, the earliest on ties; None without restarts."""
    best: tuple[float, str] | None = None
    for name, rate in rates(by_start).items():  # in start order
        if name != "s0" and (best is None or rate > best[0]):
            best = (rate, name)
    return best[1] if best else None


def rollout_seed(seed: int, method: str, iteration: int, chunk: int) -> int:
    return derive_seed(seed, "explore", method, iteration, chunk)


def iteration_start(config: RunConfig, method: MethodConfig, base: str, previous: str) -> tuple[str, SFTSettings]:
    """The model a ``method``'s iteration trains from and how: the ``base`` model with ``sft`` where the
    method retrains from the base, else the ``previous`` iteration's model with ``iteration_sft`` (``sft``
    when that is unset)."""
    if method.retrain_from_base:
        return base, config.sft
    return previous, config.iteration_sft or config.sft

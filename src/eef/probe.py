"""`eef probe`: how often a checkpoint succeeds from a task's start and from each restart point of
a set of expert failures, by difficulty level, without a whole run.

EEF harvests only where the student can finish what the expert started: its restarts pay when the
success rate from the expert's later states (``s1`` .. ``sM``) is well above the rate from the
task's start (``s0``). The probe measures exactly the episodes one EEF exploration would run over
those failures (one rollout from each task's start and from each restart point, the same restart
points and the same per-episode seeds), so the regime can be checked in a minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from eef import console
from eef.config import RolloutConfig, SamplingConfig
from eef.envs.base import ReplayDivergence, Suite, restore
from eef.errors import UserError
from eef.methods.exploration import StartCounts, success_by_start
from eef.methods.solutions import restart_points
from eef.policy.engine import TurnGenerator
from eef.rollout import RolloutEngine, replay_actions
from eef.types import EpisodeStart, Task, Trajectory


@dataclass(frozen=True)
class Probe:
    rollouts: list[Trajectory]
    by_start: StartCounts  # level (and "all") -> s0, s1, ... -> episodes, successes
    wall_time_s: float


def probe_starts(failures: list[Trajectory], tasks: dict[str, Task], m: int) -> list[EpisodeStart]:
    """One start per task of ``failures`` (its initial state) and one per restart point of each failure."""
    starts: list[EpisodeStart] = []
    initial: set[str] = set()
    for failure in failures:
        task = tasks[failure.task_id]
        if task.task_id not in initial:
            initial.add(task.task_id)
            starts.append(EpisodeStart(task))
        starts += [
            EpisodeStart(task, source=failure, action_index=point) for point in restart_points(failure.num_actions, m)
        ]
    return starts


def check_replays(suite: Suite, failures: list[Trajectory]) -> dict[str, Task]:
    """The suite's tasks by id, once the failures' tasks are there and the first failure replays as
    recorded: a file collected with other environment options fails here, before any model is loaded."""
    tasks = {task.task_id: task for split in suite.splits() for task in suite.tasks(split)}
    unknown = sorted({f.task_id for f in failures} - tasks.keys())
    if unknown:
        raise UserError(
            f"{len(unknown)} failures are of tasks {suite.name} does not have (e.g. {unknown[0]!r}): "
            "give the environment and --env-option values they were collected with"
        )
    first = failures[0]
    actions, observations = replay_actions(first, first.num_actions)
    with suite.make() as env:
        try:
            restore(env, tasks[first.task_id], actions, observations)
        except ReplayDivergence as err:
            raise UserError(_diverged(suite, err)) from None
    return tasks


def _diverged(suite: Suite, err: ReplayDivergence) -> str:
    return (
        f"an expert failure does not replay in {suite.name} with these options ({str(err).splitlines()[0]}): "
        "give the --env-option values it was collected with (a run's are under env.options in its config.yaml)"
    )


def run_probe(
    generator: TurnGenerator,
    suite: Suite,
    failures: list[Trajectory],
    *,
    m: int,
    rollout: RolloutConfig,
    sampling: SamplingConfig,
    seed: int,
    origin: str,
) -> Probe:
    """Roll ``generator`` out from every start of :func:`probe_starts`; ``failures`` must be this
    suite's (same options), or their replay diverges (a UserError that says so)."""
    starts = probe_starts(failures, check_replays(suite, failures), m)
    engine = RolloutEngine(suite, generator, rollout, sampling, origin=origin)
    began = time.perf_counter()
    with console.progress_bar(f"probe {origin}", len(starts)) as advance:
        status = console.EpisodeStatus()
        try:
            rollouts = engine.run(starts, seed=seed, on_done=lambda t: advance(status.add(t)))
        except ReplayDivergence as err:
            raise UserError(_diverged(suite, err)) from None
    return Probe(rollouts, success_by_start(rollouts, failures, m), time.perf_counter() - began)

"""Evaluate a policy on a split: rollouts from every task's initial state, then a summary."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eef import console
from eef.config import RolloutConfig, SamplingConfig
from eef.envs.base import Suite
from eef.policy.engine import TurnGenerator
from eef.rollout import RolloutEngine
from eef.storage import write_json, write_trajectories
from eef.summary import Summary, summarize
from eef.types import EpisodeStart, Task, Trajectory


@dataclass(frozen=True)
class Evaluation:
    trajectories: list[Trajectory]
    summary: Summary
    generated_tokens: int
    wall_time_s: float


def evaluate(
    generator: TurnGenerator,
    suite: Suite,
    split: str,
    rollout: RolloutConfig,
    sampling: SamplingConfig,
    *,
    origin: str,
    seed: int,
    limit: int | None = None,
    tasks: list[Task] | None = None,
) -> Evaluation:
    """Rollouts from the start of the first ``limit`` tasks of ``split``, or of ``tasks`` (a selection,
    ``split`` then only names it in the progress bar)."""
    tasks = suite.tasks(split)[:limit] if tasks is None else tasks
    engine = RolloutEngine(suite, generator, rollout, sampling, origin=origin)
    started = time.perf_counter()
    with console.progress_bar(f"eval {origin} on {suite.name}/{split}", len(tasks)) as advance:
        status = console.EpisodeStatus()
        trajectories = engine.run(
            [EpisodeStart(task) for task in tasks], seed=seed, on_done=lambda t: advance(status.add(t))
        )
    return evaluation_of(trajectories, suite, time.perf_counter() - started)


def evaluation_of(trajectories: list[Trajectory], suite: Suite, wall_time_s: float) -> Evaluation:
    """The evaluation that ``trajectories`` (one per task, from its start) make, however they were rolled out."""
    return Evaluation(
        trajectories=trajectories,
        summary=summarize(trajectories, suite.difficulty_levels()),
        generated_tokens=sum(t.generated_tokens for t in trajectories),
        wall_time_s=wall_time_s,
    )


def save_evaluation(evaluation: Evaluation, directory: Path, context: dict[str, Any]) -> dict[str, Any]:
    """Write ``trajectories.jsonl`` and ``results.json`` into ``directory``; returns the results."""
    results = {
        **context,
        "summary": evaluation.summary.model_dump(),
        "generated_tokens": evaluation.generated_tokens,
        "wall_time_s": round(evaluation.wall_time_s, 2),
        "trajectories": str(directory / "trajectories.jsonl"),
    }
    write_trajectories(directory / "trajectories.jsonl", evaluation.trajectories)
    write_json(directory / "results.json", results)
    return results

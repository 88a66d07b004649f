"""Run an expert over tasks and record every episode, successes and failures alike."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from eef import console
from eef.envs.base import Environment, Suite
from eef.envs.registry import get_suite
from eef.errors import UserError
from eef.experts.base import Expert
from eef.experts.registry import make_expert
from eef.react import parse_action
from eef.seeding import derive_seed
from eef.storage import write_json, write_trajectories
from eef.summary import summarize
from eef.types import Message, Task, Trajectory


def run_episode(suite: Suite, env: Environment, expert: Expert, task: Task, seed: int) -> Trajectory:
    """One expert episode in ``env`` (an instance from ``suite.make()``).

    The episode ends when the environment says done, or when the expert's turn names
    no action (it gives up)."""
    episode_seed = derive_seed(seed, expert.name, task.task_id)
    observation = env.reset(task)
    episode = expert.start(task, episode_seed, env)
    messages = [Message(role="system", content=suite.instruction), Message(role="user", content=observation)]
    reward, termination, num_actions = 0.0, "gave_up", 0
    while True:
        turn = episode.act(observation)
        messages.append(Message(role="assistant", content=turn, loss=True))
        num_actions += 1  # every agent turn, as rollouts count them
        action = parse_action(turn)
        if action is None:
            break
        result = env.step(action)
        observation = result.observation
        messages.append(Message(role="user", content=observation))
        if result.done:
            reward = result.reward
            termination = "success" if suite.is_success(reward) else result.info.get("termination", "done")
            break
    return Trajectory(
        id=f"expert:{expert.name}/{task.task_id}",
        env=task.env,
        task_id=task.task_id,
        messages=messages,
        reward=reward,
        success=suite.is_success(reward),
        origin=f"expert:{expert.name}",
        termination=termination,
        num_actions=num_actions,
        seed=episode_seed,
        difficulty=task.difficulty,
    )


def collect(suite: Suite, expert: Expert, tasks: Iterable[Task], seed: int) -> Iterator[Trajectory]:
    """Yield one trajectory per task, reusing one environment instance."""
    env = suite.make()
    try:
        for task in tasks:
            yield run_episode(suite, env, expert, task, seed)
    finally:
        env.close()


def collect_to_file(
    *, env_name: str, expert_spec: str, split: str, out: Path, seed: int, limit: int | None = None
) -> dict[str, Any]:
    """Collect an expert's trajectories on a split into ``out`` (JSONL, written atomically)
    and its summary into ``out`` with suffix ``.summary.json``; returns the summary."""
    if limit is not None and limit <= 0:
        raise UserError(f"--limit must be positive, got {limit}")
    suite = get_suite(env_name)
    expert = make_expert(env_name, expert_spec)
    tasks = suite.tasks(split)[:limit]
    started = time.perf_counter()
    trajectories = []
    with console.progress_bar(f"collect {expert.name} on {env_name}/{split}", len(tasks)) as advance:
        status = console.EpisodeStatus()
        for trajectory in collect(suite, expert, tasks, seed):
            trajectories.append(trajectory)
            advance(status.add(trajectory))
    write_trajectories(out, trajectories)
    summary = summarize(trajectories, suite.difficulty_levels())
    report = {
        "env": env_name,
        "expert": expert.name,
        "split": split,
        "seed": seed,
        "trajectories": str(out),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "summary": summary.model_dump(),
        "analysis": suite.expert_analysis(trajectories, {t.task_id: t for t in tasks}),
    }
    write_json(out.with_suffix(".summary.json"), report)
    return report


def print_report(report: dict[str, Any]) -> None:
    from eef.summary import Summary

    summary = Summary.model_validate(report["summary"])
    title = f"expert {report['expert']} on {report['env']}/{report['split']} (seed {report['seed']})"
    console.results.print(console.summary_table(summary, title))
    for name, value in report["analysis"].items():
        console.results.print(f"{name}: {value:.1%}" if isinstance(value, float) else f"{name}: {value}")
    console.results.print(f"trajectories: {report['trajectories']} ({report['wall_time_s']} s)")

"""Run an expert over tasks and record every episode, successes and failures alike.

Episodes run concurrently (``expert.concurrency`` at once, at most ``suite.max_concurrent_envs``
environments alive): while one waits on a chat model's API, the others go on; environment calls that
wait on another process (``suite.concurrent_steps``, e.g. ScienceWorld's JVMs) run in threads.

``collect_to_file`` appends each finished episode to ``OUT.partial.jsonl`` as it ends; a rerun of the
same command skips those, and the final ``OUT`` is written atomically, in task order, once every
episode is in. An episode whose expert could not answer (an API that kept
failing) is not written: it is listed in the summary and a rerun plays it again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from eef import console
from eef.envs.base import Environment, Suite
from eef.envs.registry import get_suite
from eef.errors import IncompleteError, UserError
from eef.experts.base import Expert, ExpertUnavailable
from eef.react import INVALID_TURN, parse_action
from eef.seeding import derive_seed
from eef.storage import append_jsonl, ends_with_newline, prepare_output, read_jsonl, write_json, write_trajectories
from eef.summary import summarize
from eef.types import Message, Task, Termination, Trajectory

Result = TypeVar("Result")

if TYPE_CHECKING:  # the HTTP client is imported only when a chat-model expert is used
    from eef.config import LLMExpertSettings


async def play_episode(suite: Suite, env: Environment, expert: Expert, task: Task, seed: int) -> Trajectory:
    """One expert episode in ``env`` (an instance from ``suite.make()``); see :class:`Expert` for when it ends."""
    episode_seed = derive_seed(seed, expert.name, task.task_id)
    observation = await _env_call(suite, env.reset, task)
    episode = await _env_call(suite, expert.start, task, episode_seed, env)  # an expert may query the environment
    messages = [Message(role="system", content=suite.instruction), Message(role="user", content=observation)]
    reward, termination, num_actions, invalid_in_a_row = 0.0, None, 0, 0
    while termination is None:
        turn = await episode.reply(messages)
        messages.append(Message(role="assistant", content=turn, loss=True))
        num_actions += 1  # every agent turn, as rollouts count them
        action = parse_action(turn)
        if action is None:
            if expert.max_invalid_turns is None:
                termination = "gave_up"
                break
            observation, invalid = INVALID_TURN, True
        else:
            result = await _env_call(suite, env.step, action)
            observation, invalid = result.observation, bool(result.info.get("invalid"))
            if result.done:
                reward = result.reward
                termination = "success" if suite.is_success(reward) else result.info.get("termination", "done")
        messages.append(Message(role="user", content=observation))
        invalid_in_a_row = invalid_in_a_row + 1 if invalid else 0
        termination = termination or _limit_reached(expert, num_actions, invalid_in_a_row)
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
        prompt_tokens=episode.prompt_tokens,
        prefilled_tokens=episode.prefilled_tokens,
        generated_tokens=episode.generated_tokens,
    )


async def _env_call(suite: Suite, function: Callable[..., Result], *args: Any) -> Result:
    """``function(*args)``: in a thread when the suite's environments wait on another process (the other
    episodes go on meanwhile), else here (a pure-Python step is faster than a thread hand-off)."""
    return await asyncio.to_thread(function, *args) if suite.concurrent_steps else function(*args)


def _limit_reached(expert: Expert, num_actions: int, invalid_in_a_row: int) -> Termination | None:
    if expert.max_invalid_turns is not None and invalid_in_a_row >= expert.max_invalid_turns:
        return "invalid_limit"
    if expert.max_turns is not None and num_actions >= expert.max_turns:
        return "step_limit"
    return None


@dataclass(frozen=True)
class FailedEpisode:
    task_id: str
    error: str


@dataclass
class CollectionResult:
    trajectories: list[Trajectory] = field(default_factory=list)  # in the order episodes finished
    failed: list[FailedEpisode] = field(default_factory=list)


async def collect_async(
    suite: Suite,
    expert: Expert,
    tasks: Sequence[Task],
    seed: int,
    on_done: Callable[[Trajectory], None] | None = None,
) -> CollectionResult:
    """Play every task, ``expert.concurrency`` episodes at once. ``on_done`` sees each trajectory as its
    episode ends; an episode whose expert raised :class:`ExpertUnavailable` is listed in ``failed``."""
    result = CollectionResult()
    queue = list(reversed(tasks))  # workers pop from the end: tasks start in order
    slots = max(1, min(expert.concurrency, suite.max_concurrent_envs or expert.concurrency, len(tasks)))

    async def worker() -> None:
        env = await _env_call(suite, suite.make)
        try:
            while queue:
                task = queue.pop()
                try:
                    trajectory = await play_episode(suite, env, expert, task, seed)
                except ExpertUnavailable as err:
                    result.failed.append(FailedEpisode(task.task_id, str(err)))
                    continue
                result.trajectories.append(trajectory)
                if on_done is not None:
                    on_done(trajectory)
        finally:
            await _env_call(suite, env.close)

    if tasks:
        async with expert.session():
            await asyncio.gather(*(worker() for _ in range(slots)))
    return result


def collect(suite: Suite, expert: Expert, tasks: Iterable[Task], seed: int) -> list[Trajectory]:
    """One trajectory per task, in task order (raises if the expert could not play one)."""
    tasks = list(tasks)
    result = asyncio.run(collect_async(suite, expert, tasks, seed))
    if result.failed:
        first = result.failed[0]
        raise ExpertUnavailable(f"{len(result.failed)} episodes failed; task {first.task_id}: {first.error}")
    by_task = {t.task_id: t for t in result.trajectories}
    return [by_task[task.task_id] for task in tasks]


def expert_file_stem(name: str) -> str:
    """``name`` as part of a file name: a model id's ``/`` becomes ``--`` (as in the Hugging Face cache)."""
    return re.sub(r"[^\w.:@+-]", "_", name.replace("/", "--"))


def partial_path(out: Path) -> Path:
    """Where finished episodes of an unfinished collection into ``out`` are appended."""
    return Path(out).with_suffix(".partial.jsonl")


def make_collection_expert(env_name: str, expert_spec: str, out: Path, llm: LLMExpertSettings | None = None) -> Expert:
    """The expert ``expert_spec`` names: a chat model behind an OpenAI-compatible API when ``llm`` is given
    or the spec reads ``openai:MODEL[@TAG]`` (its response cache lies next to ``out``), else a registered one."""
    if llm is not None or expert_spec.startswith("openai:"):
        from eef.experts.llm import LLMExpert, cache_path, settings_from_spec

        name, settings = (expert_spec, llm) if llm is not None else settings_from_spec(expert_spec)
        return LLMExpert(name, settings, cache_path(out))
    from eef.experts.registry import make_expert

    return make_expert(env_name, expert_spec)


def _resumed(path: Path, expert: Expert, env_name: str, seed: int, tasks: list[Task]) -> list[Trajectory]:
    """The finished episodes an interrupted run of this collection left in ``path`` (one per task)."""
    if not path.is_file():
        return []
    records = read_jsonl(path, Trajectory, drop_torn_tail=True)
    wanted = {task.task_id for task in tasks}
    kept: dict[str, Trajectory] = {}
    for record in records:
        expected_seed = derive_seed(seed, expert.name, record.task_id)
        if record.origin != f"expert:{expert.name}" or record.env != env_name or record.seed != expected_seed:
            raise UserError(
                f"{path} holds an unfinished collection with other settings ({record.origin}, env {record.env}, "
                f"seed {record.seed} for task {record.task_id}): rerun that command, or delete the file to start over"
            )
        if record.task_id in wanted:
            kept.setdefault(record.task_id, record)
    if not ends_with_newline(path) or len(kept) != len(records):
        write_trajectories(path, kept.values())  # drop a torn last line before appending after it
    return list(kept.values())


def collect_to_file(
    *,
    env_name: str,
    expert_spec: str,
    split: str,
    out: Path,
    seed: int,
    limit: int | None = None,
    llm: LLMExpertSettings | None = None,
    suite: Suite | None = None,
) -> dict[str, Any]:
    """Collect an expert's trajectories on a split into ``out`` (JSONL, written atomically once every
    episode is in) and its summary into ``out`` with suffix ``.summary.json``; returns the summary.

    Resumable: finished episodes go to ``OUT.partial.jsonl`` as they end and a rerun skips them. When
    episodes failed (``report["failed"]``), ``out`` and its summary are not written: a rerun retries them
    (see :func:`raise_if_incomplete`). ``suite``: the environment, built with its options (a run's);
    default ``env_name``'s with none."""
    if limit is not None and limit <= 0:
        raise UserError(f"--limit must be positive, got {limit}")
    out = Path(out)
    suite = suite or get_suite(env_name)
    tasks = suite.tasks(split)[:limit]
    prepare_output(out, "--out")
    expert = make_collection_expert(env_name, expert_spec, out, llm)
    partial = partial_path(out)
    done = _resumed(partial, expert, env_name, seed, tasks)
    finished = {t.task_id for t in done}
    started = time.perf_counter()
    with console.progress_bar(f"collect {expert.name} on {env_name}/{split}", len(tasks)) as advance:
        status = console.EpisodeStatus()
        for trajectory in done:
            advance(status.add(trajectory))

        def on_done(trajectory: Trajectory) -> None:
            append_jsonl(partial, [trajectory])
            advance(status.add(trajectory))

        todo = [task for task in tasks if task.task_id not in finished]
        result = asyncio.run(collect_async(suite, expert, todo, seed, on_done))
    by_task = {t.task_id: t for t in [*done, *result.trajectories]}
    trajectories = [by_task[task.task_id] for task in tasks if task.task_id in by_task]
    summary = summarize(trajectories, suite.difficulty_levels())
    report: dict[str, Any] = {
        "env": env_name,
        "expert": expert.name,
        "split": split,
        "seed": seed,
        "trajectories": str(out),
        "resumed_episodes": len(done),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "summary": summary.model_dump(),
        "analysis": suite.expert_analysis(trajectories, {t.task_id: t for t in tasks}),
        "tokens": _token_totals(expert, trajectories),
        "failed": [{"task_id": f.task_id, "error": f.error} for f in result.failed],
    }
    if usage := expert.usage():
        report["usage"] = usage
    if result.failed:
        report["trajectories"] = str(partial)
        return report
    write_trajectories(out, trajectories)
    write_json(out.with_suffix(".summary.json"), report)
    partial.unlink(missing_ok=True)
    return report


def _token_totals(expert: Expert, trajectories: list[Trajectory]) -> dict[str, Any]:
    """The tokens the file's episodes took (resumed ones included) and what they cost at the expert's prices.

    A model computes at least the last token of any prompt, so an episode with prompt tokens and none
    prefilled was written before eef counted them: its prompts count as computed, none as cached."""
    prompt = sum(t.prompt_tokens for t in trajectories)
    cached = prompt - sum(t.prefilled_tokens or t.prompt_tokens for t in trajectories)
    generated = sum(t.generated_tokens for t in trajectories)
    totals: dict[str, Any] = {"prompt": prompt, "cached_prompt": cached, "generated": generated}
    if (cost := expert.cost_usd(prompt, generated, cached)) is not None:
        totals["cost_usd"] = round(cost, 6)
    return totals


def raise_if_incomplete(report: dict[str, Any]) -> None:
    """One line when some episodes could not be collected (the rest are kept for a rerun)."""
    failed = report["failed"]
    if failed:
        total = report["summary"]["overall"]["episodes"] + len(failed)
        raise IncompleteError(
            f"{len(failed)} of {total} episodes could not be collected (first: task {failed[0]['task_id']}: "
            f"{failed[0]['error']}); rerun the same command to retry them (finished episodes and answers so "
            "far are kept)"
        )


def print_report(report: dict[str, Any]) -> None:
    from eef.summary import Summary

    summary = Summary.model_validate(report["summary"])
    title = f"expert {report['expert']} on {report['env']}/{report['split']} (seed {report['seed']})"
    console.results.print(console.summary_table(summary, title))
    for name, value in report["analysis"].items():
        console.results.print(f"{name}: {value:.1%}" if isinstance(value, float) else f"{name}: {value}")
    if usage := report.get("usage"):
        console.results.print(", ".join(f"{key} {value}" for key, value in usage.items()), markup=False)
    shown = 10  # the first few; --json lists them all
    for failure in report["failed"][:shown]:
        console.results.print(f"failed: task {failure['task_id']}: {failure['error']}", markup=False)
    if len(report["failed"]) > shown:
        console.results.print(f"failed: {len(report['failed']) - shown} more episodes (see --json)", markup=False)
    resumed = f", {report['resumed_episodes']} resumed" if report["resumed_episodes"] else ""
    console.results.print(f"trajectories: {report['trajectories']} ({report['wall_time_s']} s{resumed})", markup=False)

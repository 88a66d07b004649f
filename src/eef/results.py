"""The comparison table of a run (paper-style) and what the paper did not report, as JSON and Markdown.

Model selection: each method's iteration with the best dev win rate (ties -> mean reward, then the
earlier iteration); its test numbers are reported. Test results never choose anything.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eef.errors import UserError
from eef.layout import EVALUATION_TRAJECTORIES, RunLayout
from eef.methods.exploration import levels_in_order, start_order
from eef.metrics import MetricsLog
from eef.storage import atomic_write_text, iter_jsonl, read_json, write_json
from eef.types import Trajectory

if TYPE_CHECKING:
    from eef.config import RunConfig


def _eval(run: RunLayout, key: str, split: str) -> dict[str, Any]:
    return read_json(run.evaluation_results(key, split))["summary"]


def _row(name: str, test: dict[str, Any], **extra: Any) -> dict[str, Any]:
    overall = test["overall"]
    return {
        "method": name,
        "test_win_rate": overall["win_rate"],
        "test_mean_reward": overall["mean_reward"],
        "test_by_difficulty": {level: stats["win_rate"] for level, stats in test["by_difficulty"].items()},
        **extra,
    }


def test_outcomes(directory: Path, row: dict[str, Any]) -> dict[str, bool]:
    """Whether each test goal was won (by task id) in the episodes behind ``row`` of a run's results table:
    an expert's test trajectories, or the evaluation of the SFT model or of the method's reported iteration."""
    run = RunLayout(Path(directory))
    if row["kind"] == "expert":
        episodes = run.expert_data(row["method"].removeprefix("expert (").removesuffix(")"), "test")
    else:
        key = "sft" if row["kind"] == "sft" else run.iteration_key(row["method"], row["iteration"])
        episodes = run.evaluation(key, "test") / EVALUATION_TRAJECTORIES
    if not episodes.is_file():
        raise UserError(f"{directory}: {row['method']}'s test episodes are missing ({episodes})")
    return {episode.task_id: episode.success for episode in iter_jsonl(episodes, Trajectory)}


def _where_the_expert_failed(directory: Path, rows: list[dict[str, Any]]) -> int:
    """Add to each row but the main expert's (the first) its win rate on the test goals the main expert
    failed: what the expert's successes never showed, where EEF is meant to gain. Returns their number."""
    main, *others = rows
    failed = [goal for goal, won in test_outcomes(directory, main).items() if not won]
    main["test_win_rate_expert_failed"] = None
    for row in others:
        won = test_outcomes(directory, row)
        row["test_win_rate_expert_failed"] = sum(won[goal] for goal in failed) / len(failed) if failed else None
    return len(failed)


def collect_results(directory: Path, config: RunConfig) -> dict[str, Any]:
    """The comparison (``results.json``) of the run in ``directory``, from the files its stages wrote."""
    run = RunLayout(Path(directory))
    rows = []
    for expert in config.experts:
        report = read_json(run.expert_summary(expert, "test"))
        rows.append(_row(f"expert ({expert})", report["summary"], kind="expert"))
    costs = _costs(MetricsLog(run.metrics).records())
    rows.append(_row("sft", _eval(run, "sft", "test"), kind="sft", iteration=0, cost=costs.get("sft", {})))

    iterations: dict[str, list[dict[str, Any]]] = {}
    for method in config.methods:
        if method.kind == "sft":
            continue
        per_iteration = []
        for i in range(1, config.iterations + 1):
            key = run.iteration_key(method.name, i)
            dev, test = _eval(run, key, "dev"), _eval(run, key, "test")
            # What the iteration trained on: ETO's pairs, or RFT's and EEF's training set.
            built = read_json(run.pairs_done(method.name, i) if method.kind == "eto" else run.build(method.name, i))
            per_iteration.append(
                {
                    "iteration": i,
                    "dev_win_rate": dev["overall"]["win_rate"],
                    "dev_mean_reward": dev["overall"]["mean_reward"],
                    "test_win_rate": test["overall"]["win_rate"],
                    "test_mean_reward": test["overall"]["mean_reward"],
                    **built,
                }
            )
        iterations[method.name] = per_iteration
        if per_iteration:
            best = max(per_iteration, key=lambda it: (it["dev_win_rate"], it["dev_mean_reward"], -it["iteration"]))
            test = _eval(run, run.iteration_key(method.name, best["iteration"]), "test")
            rows.append(_row(method.name, test, kind=method.kind, iteration=best["iteration"], cost=costs[method.name]))
    expert_failed_goals = _where_the_expert_failed(directory, rows)
    return {
        "name": config.name,
        "seed": config.seed,
        "env": config.env.name,
        "model": config.model.name,
        "main_expert": config.experts[0],
        "expert_failed_test_goals": expert_failed_goals,
        "table": rows,
        "iterations": iterations,
        "costs": costs,
    }


def _costs(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Exploration and training cost per method; the shared SFT start is the ``sft`` entry (not
    counted again in the others). Evaluation is not a cost of a method: every method pays the same."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for record in records:
        if record.get("stage") == "eval":
            continue
        method = record["key"].split("/")[0]
        cost = totals[method]
        for field in ("rollouts", "generated_tokens", "env_steps", "wall_time_s"):
            cost[field] += record.get(field, 0)
    return {name: dict(cost) for name, cost in totals.items()}


def markdown(results: dict[str, Any]) -> str:
    failed = f"where {results['main_expert']} failed ({results['expert_failed_test_goals']} goals)"
    lines = [
        f"# {results['name']}: {results['env']}, model {results['model']}, seed {results['seed']}",
        "",
        f"| method | iteration | test win rate | test win rate {failed} | test mean reward | rollouts "
        "| generated tokens | env steps | time s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["table"]:
        if "cost" in row:
            cost = row["cost"]
            costs = (
                f"{int(cost.get('rollouts', 0))} | {int(cost.get('generated_tokens', 0))} | "
                f"{int(cost.get('env_steps', 0))} | {cost.get('wall_time_s', 0):.0f}"
            )
        else:
            costs = "- | - | - | -"  # the expert's data is given, not produced by a method
        where_failed = row["test_win_rate_expert_failed"]
        lines.append(
            f"| {row['method']} | {row.get('iteration', '-')} | {row['test_win_rate']:.1%} | "
            f"{'-' if where_failed is None else f'{where_failed:.1%}'} | {row['test_mean_reward']:.3f} | {costs} |"
        )
    levels = sorted({level for row in results["table"] for level in row["test_by_difficulty"]})
    lines += [
        "",
        "Test win rate by difficulty:",
        "",
        "| method | " + " | ".join(levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for row in results["table"]:
        rates = [f"{row['test_by_difficulty'].get(level, 0):.0%}" for level in levels]
        lines.append(f"| {row['method']} | " + " | ".join(rates) + " |")
    lines += ["", *_per_iteration_tables(results["iterations"])]
    return "\n".join(lines) + "\n"


SOLUTION_STARTS = ("s0", "restart", "recovery")  # where a solution's policy part started (build.json)


def _per_iteration_tables(iterations: dict[str, list[dict[str, Any]]]) -> list[str]:
    """What each method's iterations explored, found and trained on (EEF's mechanism at work, or not)."""
    lines = [
        "Per iteration (dev selects). Solved train tasks: those with training data; of them, those the main",
        "expert failed (what its successes never show). Training set: its successes (E+) and the new solutions,",
        "by where the policy's part of each started: the task's start (s0), a restart point inside a failed",
        "expert trajectory (restart), or a recovery state (recovery); for ETO, its preference pairs:",
        "",
        "| method | iter | dev win | test win | solved train tasks | of them, expert failed | training set (share) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, per_iteration in iterations.items():
        for it in per_iteration:
            solved = f"{it['solved_tasks']} ({_levels(it['solved_by_difficulty'])})" if "solved_tasks" in it else "-"
            new = it.get("newly_solved_by_difficulty")  # absent: ETO, or a run from before it was counted
            newly = f"{sum(new.values())} ({_levels(new)})" if new is not None else "-"
            lines.append(
                f"| {method} | {it['iteration']} | {it['dev_win_rate']:.1%} | {it['test_win_rate']:.1%} | "
                f"{solved} | {newly} | {_training_set(it)} |"
            )
    levels = sorted({level for its in iterations.values() for it in its for level in it.get("solutions_by_level", {})})
    lines += ["", "New solutions by difficulty level (s0 / restart / recovery):", ""]
    lines += _solutions_by_level_table(iterations, levels) if levels else ["(none)"]
    by_start = [(m, it) for m, its in iterations.items() for it in its if it.get("success_by_start_and_level")]
    starts = sorted(
        {name for _, it in by_start for counts in it["success_by_start_and_level"].values() for name in counts},
        key=start_order,
    )
    lines += [
        "",
        "Success rate of the exploration rollouts by difficulty level and start (s0: the task's start; sj: the",
        "j-th restart point of a failed expert trajectory; rollouts in brackets). Iteration i explores with",
        "the model of iteration i - 1 (iteration 1: the SFT model):",
        "",
        "| method | iter | level | " + " | ".join(starts) + " |",
        "|---|---|---|" + "---|" * len(starts),
    ]
    for method, it in by_start:
        by_level = it["success_by_start_and_level"]
        for level in levels_in_order(by_level):
            counts = by_level[level]
            cells = [_rate(counts.get(name)) for name in starts]
            lines.append(f"| {method} | {it['iteration']} | {level} | " + " | ".join(cells) + " |")
    return lines


def _solutions_by_level_table(iterations: dict[str, list[dict[str, Any]]], levels: list[str]) -> list[str]:
    lines = ["| method | iter | " + " | ".join(levels) + " |", "|---|---|" + "---|" * len(levels)]
    for method, per_iteration in iterations.items():
        for it in per_iteration:
            found = it.get("solutions_by_level", {})
            cells = [
                " / ".join(str(found.get(level, {}).get(start, 0)) for start in SOLUTION_STARTS) for level in levels
            ]
            lines.append(f"| {method} | {it['iteration']} | " + " | ".join(cells) + " |")
    return lines


def _training_set(iteration: dict[str, Any]) -> str:
    if "pairs" not in iteration:
        return _shares(training_set_sources(iteration))
    return (
        f"{iteration['pairs']} pairs: expert chosen {iteration['expert_better']}, rollout chosen "
        f"{iteration['rollout_better']} (ties {iteration['ties']}, no expert success {iteration['without_expert']})"
    )


def training_set_sources(iteration: dict[str, Any]) -> dict[str, int]:
    """The training set's trajectories by source: expert successes, then the solutions by start; for ETO,
    its preference pairs by the side the expert trajectory is on."""
    if "pairs" in iteration:
        return {"expert chosen": iteration["expert_better"], "rollout chosen": iteration["rollout_better"]}
    found = iteration.get("solutions_by_level")
    if found is None:  # a run from before solutions were counted by start
        composition = iteration["composition"]
        return {"E+": composition["expert_successes"], "s0": composition["from_initial_states"],
                "recovery": composition["from_recovery_states"]}  # fmt: skip
    totals = {start: sum(level.get(start, 0) for level in found.values()) for start in SOLUTION_STARTS}
    return {"E+": iteration["composition"]["expert_successes"], **totals}


def _shares(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {count} ({count / total:.0%})" for name, count in counts.items())


def _rate(counts: dict[str, int] | None) -> str:
    if not counts or not counts["episodes"]:
        return "-"
    return f"{counts['successes'] / counts['episodes']:.0%} ({counts['episodes']})"


def _levels(counts: dict[str, int]) -> str:
    return ", ".join(f"{level} {counts[level]}" for level in sorted(counts))


def write_results(directory: Path, config: RunConfig) -> dict[str, Any]:
    """Write ``results.json`` and ``results.md`` of the run in ``directory``; returns the results."""
    results = collect_results(directory, config)
    run = RunLayout(Path(directory))
    write_json(run.results, results)
    atomic_write_text(run.results_table, markdown(results))
    return results

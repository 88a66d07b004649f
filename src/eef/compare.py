"""`eef compare RUN_DIR...`: one table over several runs (seeds, ablations), mean and spread per method, and
margins over baselines with their 95% intervals: over the runs, and within each run over its test goals."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from eef.errors import UserError
from eef.intervals import mean_interval
from eef.layout import RunLayout
from eef.results import test_outcomes
from eef.storage import read_json

CONFIDENCE = 0.95


def load_run_results(directory: Path) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; give a run directory (`eef run --out DIR` makes one)")
    run = RunLayout(directory)
    if not run.config.is_file():
        raise UserError(f"{directory}: not a run directory (no config.yaml); give one that `eef run` wrote")
    path = run.results
    if not path.is_file():
        raise UserError(
            f"{directory}: no results.json, not a finished run: finish it with `eef run --resume {directory}`"
        )
    return read_json(path)


def paired_by_goal(method: dict[str, bool], versus: dict[str, bool], where: str) -> dict[str, Any]:
    """One run's margin of ``method`` over ``versus`` on the same test goals: how many goals each won alone,
    and the interval of the margin over the goals (of the per-goal differences +1, 0, -1), which shows how
    much of it the draw of test goals alone could make."""
    if method.keys() != versus.keys():
        raise UserError(f"{where}: the two methods were tested on different goals; evaluate both on the same split")
    differences = [float(won) - float(versus[goal]) for goal, won in method.items()]
    return {
        "goals": len(differences),
        "only_method": differences.count(1.0),
        "only_versus": differences.count(-1.0),
        "interval": _interval(differences),
    }


def _harvest(result: dict[str, Any], row: dict[str, Any]) -> dict[str, float] | None:
    """What the iteration a run reports of a method explored and found: its rollouts, and the training
    tasks the main expert failed that it solved, by difficulty level (None where it found no training set)."""
    iterations = result.get("iterations", {}).get(row["method"])
    if not iterations or "newly_solved_by_difficulty" not in iterations[row["iteration"] - 1]:
        return None
    found = iterations[row["iteration"] - 1]["newly_solved_by_difficulty"]
    return {"rollouts": row["cost"]["rollouts"], "expert_failed_solved": sum(found.values()), **found}


def _mean_by_key(per_run: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each key over the runs, a key a run lacks counting 0 there (a level none of its tasks had)."""
    keys = list(dict.fromkeys(key for values in per_run for key in values))
    return {key: statistics.fmean(values.get(key, 0.0) for values in per_run) for key in keys}


def _interval(values: list[float]) -> list[float] | None:
    interval = mean_interval(values, CONFIDENCE)
    return list(interval) if interval else None


def _spread(values: list[float]) -> dict[str, float]:
    # The sample standard deviation: runs are a sample of seeds. One run has no spread (0).
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def compare(directories: list[Path], versus: list[str] | None = None) -> dict[str, Any]:
    """Per method: test win rate and mean reward over the runs, with each run's values and seed.

    ``versus``: baseline methods; every other method gets its win-rate margin over each, paired by
    run (the same seed's expert data and SFT model), as mean ± spread, how many runs it wins, the 95%
    interval of the mean over the runs (Student's t: every source of spread, from two runs on) and, per
    run, the margin's 95% interval over that run's test goals, paired by goal (the goals' draw alone)."""
    runs = [load_run_results(d) for d in directories]
    methods: dict[str, dict[str, list[Any]]] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for result in runs:
        for row in result["table"]:
            entry = methods.setdefault(
                row["method"], {"win_rate": [], "mean_reward": [], "expert_failed": [], "harvest": []}
            )
            entry["win_rate"].append(row["test_win_rate"])
            entry["mean_reward"].append(row["test_mean_reward"])
            entry["expert_failed"].append(row.get("test_win_rate_expert_failed"))  # None: the main expert, older runs
            entry["harvest"].append(_harvest(result, row))
            rows.setdefault(row["method"], []).append(row)
    outcomes: dict[tuple[int, str], dict[str, bool]] = {}

    def outcomes_of(run: int, method: str) -> dict[str, bool]:
        if (run, method) not in outcomes:
            try:
                outcomes[run, method] = test_outcomes(directories[run], rows[method][run])
            except UserError as err:
                raise UserError(f"{err}; a margin pairs the methods' test episodes by goal") from None
        return outcomes[run, method]

    margins = []
    for baseline in versus or []:
        if baseline not in methods or len(methods[baseline]["win_rate"]) != len(runs):
            raise UserError(f"--versus {baseline}: not a method of every run (methods: {', '.join(methods)})")
        for name, values in methods.items():
            if name == baseline or len(values["win_rate"]) != len(runs):
                continue
            gaps = [a - b for a, b in zip(values["win_rate"], methods[baseline]["win_rate"], strict=True)]
            per_run = [
                paired_by_goal(outcomes_of(i, name), outcomes_of(i, baseline), f"{directory}: {name} and {baseline}")
                for i, directory in enumerate(directories)
            ]
            margins.append(
                {
                    "method": name,
                    "versus": baseline,
                    **_spread(gaps),
                    "values": gaps,
                    "wins": sum(g > 0 for g in gaps),
                    "interval": _interval(gaps),
                    "per_run": per_run,
                }
            )
    return {
        "margins": margins,
        "runs": [
            {"directory": str(d), "name": r["name"], "seed": r["seed"]} for d, r in zip(directories, runs, strict=True)
        ],
        "methods": {
            name: {
                "kind": rows[name][0].get("kind", ""),
                "runs": len(values["win_rate"]),
                "test_win_rate": {
                    **_spread(values["win_rate"]),
                    "values": values["win_rate"],
                    "interval": _interval(values["win_rate"]),
                },
                "test_mean_reward": {**_spread(values["mean_reward"]), "values": values["mean_reward"]},
                # On the test goals each run's main expert failed, where every run has it.
                "test_win_rate_expert_failed": (
                    None
                    if None in values["expert_failed"]
                    else {**_spread(values["expert_failed"]), "values": values["expert_failed"]}
                ),
                "test_by_difficulty": _mean_by_key([row["test_by_difficulty"] for row in rows[name]]),
                # Of its reported iteration in each run, where every run explored (RFT, EEF; not ETO, SFT, experts).
                "harvest": None if None in values["harvest"] else _mean_by_key(values["harvest"]),
            }
            for name, values in methods.items()
        },
    }


def markdown(comparison: dict[str, Any]) -> str:
    seeds = ", ".join(str(run["seed"]) for run in comparison["runs"])
    lines = [
        f"Test split, {len(comparison['runs'])} runs (seeds {seeds}); mean ± sample standard deviation",
        "",
        "| method | runs | win rate | win rate where the main expert failed | mean reward | win rate per run |",
        "|---|---|---|---|---|---|",
    ]
    for name, stats in comparison["methods"].items():
        win, reward, failed = stats["test_win_rate"], stats["test_mean_reward"], stats["test_win_rate_expert_failed"]
        where_failed = f"{failed['mean']:.1%} ± {failed['std']:.1%}" if failed else "-"
        lines.append(
            f"| {name} | {stats['runs']} | {win['mean']:.1%} ± {win['std']:.1%} | {where_failed} | "
            f"{reward['mean']:.3f} ± {reward['std']:.3f} | {' / '.join(f'{v:.1%}' for v in win['values'])} |"
        )
    methods = comparison["methods"]
    levels = sorted({level for stats in methods.values() for level in stats["test_by_difficulty"]})
    lines += ["", "Test win rate by difficulty (mean over the runs):", "", f"| method | {' | '.join(levels)} |"]
    lines.append("|---|" + "---|" * len(levels))
    for name, stats in methods.items():
        rates = " | ".join(f"{stats['test_by_difficulty'].get(level, 0.0):.1%}" for level in levels)
        lines.append(f"| {name} | {rates} |")
    harvested = {name: stats["harvest"] for name, stats in methods.items() if stats["harvest"]}
    if harvested:
        lines += [
            "",
            "Training tasks the main expert failed that each method solved, in the iteration it reports "
            "(mean over the runs):",
            "",
            f"| method | rollouts | solved | {' | '.join(levels)} |",
            "|---|---|---|" + "---|" * len(levels),
        ]
        for name, found in harvested.items():
            per_level = " | ".join(f"{found.get(level, 0.0):.1f}" for level in levels)
            lines.append(f"| {name} | {found['rollouts']:.0f} | {found['expert_failed_solved']:.1f} | {per_level} |")
    if comparison["margins"]:
        lines += [
            "",
            "| win-rate margin | mean ± std | 95% interval over the runs | per run ± 95% over its goals "
            "| goals won by one only, per run | runs won |",
            "|---|---|---|---|---|---|",
        ]
        for margin in comparison["margins"]:
            interval = margin["interval"]
            over_runs = f"{interval[0]:+.1%} .. {interval[1]:+.1%}" if interval else "- (one run)"
            per_run = " / ".join(
                f"{value:+.1%}" + (f" ± {(run['interval'][1] - run['interval'][0]) / 2:.1%}" if run["interval"] else "")
                for value, run in zip(margin["values"], margin["per_run"], strict=True)
            )
            alone = " / ".join(f"{run['only_method']} : {run['only_versus']}" for run in margin["per_run"])
            lines.append(
                f"| {margin['method']} − {margin['versus']} | {margin['mean']:+.1%} ± {margin['std']:.1%} | "
                f"{over_runs} | {per_run} | {alone} | {margin['wins']} of {len(margin['values'])} |"
            )
        lines += [
            "",
            "Over the runs: Student's t on the runs' margins (goals, training and exploration all vary). Over its "
            "goals: the same run's test goals, paired by goal (what the draw of goals alone could make of the "
            "margin). Goals won by one only: by the method : by the baseline.",
        ]
    return "\n".join(lines)

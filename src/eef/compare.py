"""`eef compare RUN_DIR...`: one table over several runs (seeds, ablations), mean and spread per method."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from eef.errors import UserError
from eef.layout import RunLayout
from eef.storage import read_json


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


def _spread(values: list[float]) -> dict[str, float]:
    # The sample standard deviation: runs are a sample of seeds. One run has no spread (0).
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def compare(directories: list[Path], versus: list[str] | None = None) -> dict[str, Any]:
    """Per method: test win rate and mean reward over the runs, with each run's values and seed.

    ``versus``: baseline methods; every other method gets its win-rate margin over each, paired by
    run (the same seed's expert data and SFT model), as mean ± spread and how many runs it wins."""
    runs = [load_run_results(d) for d in directories]
    methods: dict[str, dict[str, list[float]]] = {}
    for result in runs:
        for row in result["table"]:
            entry = methods.setdefault(row["method"], {"win_rate": [], "mean_reward": []})
            entry["win_rate"].append(row["test_win_rate"])
            entry["mean_reward"].append(row["test_mean_reward"])
    margins = []
    for baseline in versus or []:
        if baseline not in methods or len(methods[baseline]["win_rate"]) != len(runs):
            raise UserError(f"--versus {baseline}: not a method of every run (methods: {', '.join(methods)})")
        for name, values in methods.items():
            if name == baseline or len(values["win_rate"]) != len(runs):
                continue
            gaps = [a - b for a, b in zip(values["win_rate"], methods[baseline]["win_rate"], strict=True)]
            margins.append(
                {"method": name, "versus": baseline, **_spread(gaps), "values": gaps, "wins": sum(g > 0 for g in gaps)}
            )
    return {
        "margins": margins,
        "runs": [
            {"directory": str(d), "name": r["name"], "seed": r["seed"]} for d, r in zip(directories, runs, strict=True)
        ],
        "methods": {
            name: {
                "runs": len(values["win_rate"]),
                "test_win_rate": {**_spread(values["win_rate"]), "values": values["win_rate"]},
                "test_mean_reward": {**_spread(values["mean_reward"]), "values": values["mean_reward"]},
            }
            for name, values in methods.items()
        },
    }


def markdown(comparison: dict[str, Any]) -> str:
    seeds = ", ".join(str(run["seed"]) for run in comparison["runs"])
    lines = [
        f"Test split, {len(comparison['runs'])} runs (seeds {seeds}); mean ± sample standard deviation",
        "",
        "| method | runs | win rate | mean reward | win rate per run |",
        "|---|---|---|---|---|",
    ]
    for name, stats in comparison["methods"].items():
        win, reward = stats["test_win_rate"], stats["test_mean_reward"]
        lines.append(
            f"| {name} | {stats['runs']} | {win['mean']:.1%} ± {win['std']:.1%} | "
            f"{reward['mean']:.3f} ± {reward['std']:.3f} | {' / '.join(f'{v:.1%}' for v in win['values'])} |"
        )
    if comparison["margins"]:
        lines += ["", "| win-rate margin | mean ± std | per run | runs won |", "|---|---|---|---|"]
        for margin in comparison["margins"]:
            per_run = " / ".join(f"{v:+.1%}" for v in margin["values"])
            lines.append(
                f"| {margin['method']} − {margin['versus']} | {margin['mean']:+.1%} ± {margin['std']:.1%} | "
                f"{per_run} | {margin['wins']} of {len(margin['values'])} |"
            )
    return "\n".join(lines)

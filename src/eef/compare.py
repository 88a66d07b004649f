"""`eef compare RUN_DIR...`: one table over several runs (seeds, ablations), mean and spread per method."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from eef.errors import UserError
from eef.storage import read_json


def load_run_results(directory: Path) -> dict[str, Any]:
    path = Path(directory) / "results.json"
    if not path.is_file():
        raise UserError(
            f"{directory}: no results.json, not a finished run: finish it with `eef run --resume {directory}`"
        )
    return read_json(path)


def _spread(values: list[float]) -> dict[str, float]:
    # The sample standard deviation: runs are a sample of seeds. One run has no spread (0).
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def compare(directories: list[Path]) -> dict[str, Any]:
    """Per method: test win rate and mean reward over the runs, with each run's values and seed."""
    runs = [load_run_results(d) for d in directories]
    methods: dict[str, dict[str, list[float]]] = {}
    for result in runs:
        for row in result["table"]:
            entry = methods.setdefault(row["method"], {"win_rate": [], "mean_reward": []})
            entry["win_rate"].append(row["test_win_rate"])
            entry["mean_reward"].append(row["test_mean_reward"])
    return {
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
    return "\n".join(lines)

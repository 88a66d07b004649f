"""A small `eef run` (a minute on 2 cores) for the tests that need a real run directory, and how to
compare a run directory with it."""

import hashlib
import json
import os
import sys
from pathlib import Path

SMALL = [
    "env.train_tasks=24",
    "env.explore_tasks=16",  # the last 8 training tasks stay unexplored: eef ceiling's held-out tasks
    "env.dev_tasks=4",
    "env.test_tasks=4",
    "iterations=1",
    "sft.epochs=1",
    "rollout.batch_size=8",
    "rollout.explore.max_new_tokens=24",
    "rollout.evaluate.max_new_tokens=24",
    "experts=[scripted]",
    "dpo.epochs=1",
    "dpo.learning_rate=1e-4",
    "methods=[{name: eef, kind: eef, m: 2}, {name: eto, kind: eto, temperature: 0}]",
]


def small_run_command(out: Path, *extra: str) -> list[str]:
    overrides = [arg for item in SMALL for arg in ("--set", item)]
    return [sys.executable, "-m", "eef", "run", "--out", str(out), *overrides, *extra]


def quiet_env() -> dict[str, str]:
    return {**os.environ, "EEF_QUIET": "1"}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def data_files(run: Path) -> list[Path]:
    return sorted(p.relative_to(run) for p in run.rglob("*.jsonl") if p.name != "metrics.jsonl")


def assert_same_data(run: Path, whole: Path) -> None:
    """``run`` holds exactly the data of the uninterrupted run ``whole``: the same trajectory files line
    for line with no duplicate, every stage logged once, and the same results table."""
    assert data_files(run) == data_files(whole)
    for relative in data_files(whole):
        expected, got = lines(whole / relative), lines(run / relative)
        ids = [record["id"] for record in got]
        assert len(ids) == len(set(ids)), f"duplicates in {relative}"
        assert got == expected, f"{relative} differs from the uninterrupted run"
    metric_keys = [record["key"] for record in lines(run / "metrics.jsonl")]
    assert len(metric_keys) == len(set(metric_keys))
    assert set(metric_keys) == {record["key"] for record in lines(whole / "metrics.jsonl")}

    def table(directory: Path) -> list[dict]:  # without wall times, which differ between any two runs
        rows = json.loads((directory / "results.json").read_text())["table"]
        return [{key: value for key, value in row.items() if key != "cost"} for row in rows]

    assert table(run) == table(whole)


def snapshot(directory: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``directory``, dot-files included: its size, modification time and content hash."""
    return {
        str(path.relative_to(directory)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }

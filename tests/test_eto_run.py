"""ETO as a method of `eef run`: what the small run's ETO iteration wrote, checked against its inputs."""

import json
from pathlib import Path

from eef.methods.eto import build_pairs, read_pairs
from eef.storage import read_jsonl
from eef.types import Trajectory


def test_the_pairs_are_the_rollouts_paired_with_the_expert_successes(small_run: Path):
    iteration = small_run / "eto" / "iter-1"
    rollouts = read_jsonl(iteration / "rollouts.jsonl", Trajectory)
    assert rollouts and all(t.start.is_initial for t in rollouts)  # ETO explores from the tasks' starts
    expert = read_jsonl(small_run / "experts" / "scripted-train.jsonl", Trajectory)
    expected = build_pairs(rollouts, [t for t in expert if t.success])

    pairs = read_pairs(iteration / "pairs.jsonl")
    assert pairs == expected.pairs and pairs, "the run's pairs are not those of its rollouts and expert successes"
    done = json.loads((iteration / "pairs.json").read_text())
    assert {key: done[key] for key in expected.counts()} == expected.counts()
    assert done["success_by_start_and_level"]["all"]["s0"]["episodes"] == len(rollouts)


def test_eto_trains_with_dpo_and_reports_like_the_other_methods(small_run: Path):
    metrics = [json.loads(line) for line in (small_run / "metrics.jsonl").read_text().splitlines()]
    train = next(m for m in metrics if m["key"] == "eto/iter-1/train")
    pairs = len(read_pairs(small_run / "eto" / "iter-1" / "pairs.jsonl"))
    assert train["pairs"] == pairs and train["steps"] >= 1 and "margin_after" in train
    assert (small_run / "eto" / "iter-1" / "checkpoint" / "config.json").is_file()

    results = json.loads((small_run / "results.json").read_text())
    row = next(r for r in results["table"] if r["method"] == "eto")
    assert row["kind"] == "eto" and row["iteration"] == 1 and row["cost"]["rollouts"] == 16  # env.explore_tasks
    table = (small_run / "results.md").read_text()
    assert "| eto | 1 |" in table and f"{pairs} pairs: expert chosen" in table

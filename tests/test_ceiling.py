"""`eef ceiling` on a real run: the oracle's solutions it adds, the model it trains, what it measures, bad input."""

import json
from pathlib import Path

from eef.layout import RunLayout
from eef.storage import read_json, read_trajectories
from tests.test_cli import assert_user_error, eef


def test_ceiling_adds_the_oracles_solutions_of_the_explored_expert_failures(small_run: Path, tmp_path: Path):
    out = tmp_path / "ceiling"
    result = eef("ceiling", str(small_run), "--method", "eef", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == read_json(out / "ceiling.json")

    layout = RunLayout(small_run)
    expert = {t.task_id: t for t in read_trajectories(layout.expert_data("scripted", "train"))}
    order = list(expert)  # the expert's file is in task order
    failed = [task_id for task_id, t in expert.items() if not t.success]
    explored_failures = [task_id for task_id in failed if order.index(task_id) < 16]  # env.explore_tasks
    solutions = read_trajectories(out / "oracle.jsonl")
    assert solutions and all(t.success for t in solutions)
    assert {t.task_id for t in solutions} <= set(explored_failures) and report["oracle_tasks"] == len(explored_failures)
    method_set = read_trajectories(layout.training_set("eef", 1))
    assert [t.id for t in read_trajectories(out / "train.jsonl")] == [t.id for t in method_set + solutions]
    assert (out / "checkpoint" / "config.json").is_file()

    held_out = [task_id for task_id in failed if order.index(task_id) >= 16]
    assert report["held_out_tasks"] == len(held_out) > 0
    rows = {row["model"]: row for row in report["rows"]}
    assert list(rows) == ["sft", "eef", "ceiling"]
    assert rows["sft"]["training_set"] == sum(t.success for t in expert.values())
    assert rows["ceiling"]["training_set"] == len(method_set) + len(solutions)
    for name, row in rows.items():
        rollouts = read_trajectories(out / f"held-out-{name}" / "trajectories.jsonl")
        assert sorted(t.task_id for t in rollouts) == sorted(held_out)
        assert row["held_out"]["overall"]["successes"] == sum(t.success for t in rollouts)
    for name, key in (("sft", "sft"), ("eef", "eef/iter-1")):  # the run's own dev results
        assert rows[name]["dev"] == read_json(layout.evaluation_results(key, "dev"))["summary"]
    assert rows["ceiling"]["dev"]["overall"]["episodes"] == 4  # env.dev_tasks


def test_ceiling_bad_input_is_one_line(small_run: Path, tmp_path: Path):
    out = str(tmp_path / "c")
    assert_user_error(eef("ceiling", str(small_run), "--method", "eto", "--out", out), "--method 'eto'", "eef")
    assert_user_error(eef("ceiling", str(tmp_path), "--out", out), "not a run directory")
    assert_user_error(eef("ceiling", str(small_run), "--method", "eef", "--out", str(small_run / "c")), "inside")
    assert_user_error(
        eef("ceiling", str(small_run), "--method", "eef", "--oracle", "nobody", "--out", out), "unknown expert"
    )
    assert_user_error(eef("ceiling", str(small_run), "--method", "eef", "--held-out", "0", "--out", out), "--held-out")
    assert not Path(out).exists()

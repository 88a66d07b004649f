"""`eef probe` on a real run's SFT model and expert failures: what it runs, what it counts, bad input."""

import json
from pathlib import Path

import yaml

from eef.methods.solutions import restart_points
from eef.storage import read_trajectories
from tests.test_architecture import refused_before_torch
from tests.test_cli import assert_user_error, eef


def _env_options(run: Path) -> list[str]:
    options = yaml.safe_load((run / "config.yaml").read_text())["env"]["options"]
    return [arg for key, value in options.items() for arg in ("--env-option", f"{key}={value}")]


def test_probe_runs_every_restart_point_once_and_counts_by_level(small_run, tmp_path):
    experts = small_run / "experts" / "scripted-train.jsonl"
    failures = [t for t in read_trajectories(experts) if not t.success][:6]
    out = tmp_path / "probe.jsonl"
    result = eef(
        "probe", str(small_run / "sft" / "checkpoint"), "--restarts", str(experts), "--limit", "6", "--m", "3",
        "--max-new-tokens", "24", "--out", str(out), "--json", *_env_options(small_run),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rollouts = read_trajectories(out)
    expected = {(f.id, point) for f in failures for point in restart_points(f.num_actions, 3)}
    restarts = {(t.start.expert_trajectory_id, t.start.action_index) for t in rollouts if not t.start.is_initial}
    assert restarts == expected and len(rollouts) == report["episodes"] == len(expected) + len(failures)
    assert sorted(t.task_id for t in rollouts if t.start.is_initial) == sorted(f.task_id for f in failures)
    overall = report["by_start"]["all"]
    assert sum(c["episodes"] for c in overall.values()) == len(rollouts)
    assert sum(c["successes"] for c in overall.values()) == sum(t.success for t in rollouts)
    for level, counts in report["by_start"].items():
        if level != "all":
            assert counts["s0"]["episodes"] == sum(f.difficulty == level for f in failures)


def test_probe_bad_input_is_one_line(small_run, tmp_path):
    checkpoint, experts = str(small_run / "sft" / "checkpoint"), str(small_run / "experts" / "scripted-train.jsonl")
    assert_user_error(eef("probe", checkpoint, "--restarts", experts, "--levels", "hard"), "no level 'hard'", "options")
    successes = tmp_path / "successes.jsonl"
    successes.write_text(
        "".join(line for line in Path(experts).read_text().splitlines(True) if '"success": true' in line)
    )
    assert_user_error(eef("probe", checkpoint, "--restarts", str(successes)), "no failed trajectories")
    assert_user_error(eef("probe", str(tmp_path / "none"), "--restarts", experts), "no such checkpoint")
    # Collected with other page options than the probe's environment: the replay diverges.
    other = ["--env-option", "instruction_on_pages=top"]
    assert_user_error(eef("probe", checkpoint, "--restarts", experts, "--limit", "2", *other), "--env-option")


def test_probe_answers_bad_input_before_torch_loads(small_run):
    # The model code takes seconds to import: a mistyped level or folder is answered without it.
    checkpoint, experts = str(small_run / "sft" / "checkpoint"), str(small_run / "experts" / "scripted-train.jsonl")
    for args in (["--levels", "hard"], ["--limit", "0"]):
        command = ["probe", checkpoint, "--restarts", experts, *args]
        assert refused_before_torch(command), args

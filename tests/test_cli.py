"""The `eef` command as a user meets it: a real subprocess, exit codes, one-line errors, no traceback."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_architecture import _loads_torch, refused_before_torch


def eef(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eef", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "EEF_QUIET": "1"},
        timeout=timeout,
    )


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_envs_lists_shop_as_usable():
    result = eef("envs", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["shop"]["usable"] is True


def test_unknown_environment(tmp_path):
    assert_user_error(
        eef("collect", "--env", "mars", "--out", str(tmp_path / "x.jsonl")), "unknown environment 'mars'", "shop"
    )


def test_unknown_split(tmp_path):
    assert_user_error(eef("collect", "--split", "nope", "--out", str(tmp_path / "x.jsonl")), "nope", "train")
    assert not (tmp_path / "x.jsonl").exists()


def test_malformed_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{}\n")
    assert_user_error(eef("stats", str(path)), f"{path}:1", "invalid Trajectory record")


def test_unknown_option_exits_2():
    result = eef("collect", "--no-such-option")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_bad_config_value(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("iterations: -1\n")
    assert_user_error(eef("run", str(config), "--out", str(tmp_path / "run")), "c.yaml", "iterations")
    assert_user_error(eef("run", "--set", "methods", "--out", str(tmp_path / "run")), "key.path=value")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [
        ("train", "--epochs", "0"),
        ("train", "--batch-size", "0"),
        ("eval", "--batch-size", "0"),
        ("eval", "--temperature", "-1"),
        ("eval", "--max-new-tokens", "0"),
    ],
)
def test_out_of_bounds_numbers_name_their_flag(tmp_path, command, flag, value):
    # Checked before any data or model is read: the files need not exist.
    files = ["--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "out")]
    target = files if command == "train" else ["tiny"]
    assert_user_error(eef(command, *target, flag, value), f"{flag}: Input should be greater")
    assert not (tmp_path / "out").exists()


def test_train_and_eval_answer_bad_input_before_the_model_code_loads(tmp_path):
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text("{not json\n")
    for command in (
        ["train", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "out"), "--epochs", "0"],
        ["train", "--data", str(malformed), "--out", str(tmp_path / "out")],
        ["eval", "tiny", "--batch-size", "0"],
        ["eval", "tiny", "--split", "no-such-split"],
    ):
        assert refused_before_torch(command), command
    assert _loads_torch("import eef.evaluate, eef.training.sft")  # the check can fail: the model code loads it


def test_collect_writes_trajectories_and_summary(tmp_path):
    out = tmp_path / "expert.jsonl"
    result = eef("collect", "--limit", "30", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["overall"]["episodes"] == 30
    assert len(out.read_text().splitlines()) == 30
    assert json.loads(out.with_suffix(".summary.json").read_text()) == report
    stats = json.loads(eef("stats", str(out), "--json").stdout)
    assert stats["overall"] == report["summary"]["overall"]


@pytest.mark.parametrize("command", ["envs", "collect", "stats", "train", "eval", "run", "verify"])
def test_every_command_has_help(command):
    result = eef(command, "--help")
    assert result.returncode == 0 and "usage: eef" in result.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None and torch.cuda.is_available(), reason="vllm can run here"
)
def test_vllm_engine_where_it_cannot_run_fails_before_any_work(tmp_path):
    out = tmp_path / "run"
    assert_user_error(eef("run", "--out", str(out), "--set", "rollout.engine=vllm"), "rollout.engine is vllm")
    assert not out.exists() or not any(out.iterdir())


def test_env_options_reach_the_environment(tmp_path):
    out = tmp_path / "x.jsonl"
    result = eef("collect", "--env-option", "max_steps=2", "--limit", "5", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    actions = [json.loads(line)["num_actions"] for line in out.read_text().splitlines()]
    assert len(actions) == 5 and max(actions) <= 2
    assert_user_error(eef("collect", "--env-option", "max_steps=zero", "--out", str(out)), "max_steps")
    assert_user_error(eef("eval", "tiny", "--env-option", "colour=red"), "colour")

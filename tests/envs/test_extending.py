"""Adding an environment is one folder and one registry line (docs/extending.md): ``counter``, defined in
tests/envs/counter_env.py with its own experts, is registered here and goes through the real `eef` commands,
collect, train, eval and a one-iteration run. The commands run in this process (``eef.cli.main``): a
registration lives in the process that makes it."""

import json

import pytest
import yaml
from tests.envs.counter_env import COUNTER, TARGETS

from eef.cli import main
from eef.envs.base import ReplayDivergence, restore_points
from eef.envs.registry import get_suite, register, unregister
from eef.experts.collect import collect
from eef.experts.registry import make_expert
from eef.methods.solutions import restart_points
from eef.react import parse_action


@pytest.fixture
def counter(monkeypatch):
    monkeypatch.setenv("EEF_QUIET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # what main() would set for the rest of the process
    register(COUNTER)
    yield
    unregister(COUNTER.name)


def eef_here(capsys, *args: str) -> tuple[int, str, str]:
    """`eef ARGS` in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def eef_json(capsys, *args: str):
    """What `eef ARGS --json` prints, once it has succeeded."""
    code, out, err = eef_here(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_registered_environment_is_listed_with_its_experts(counter, tmp_path, capsys):
    rows = {row["name"]: row for row in eef_json(capsys, "envs")}
    assert rows["counter"]["usable"] is True
    code, _, err = eef_here(capsys, "collect", "--env", "counter", "--expert", "scripted", "--out", str(tmp_path / "x"))
    assert code == 2 and "known experts are overshooting, steady" in err
    with pytest.raises(ValueError, match="registered already"):
        register(COUNTER)


def test_expert_failures_replay_to_their_restart_points(counter):
    # The contract a restart needs: reset + the recorded actions reach the recorded observations.
    suite = get_suite("counter")
    tasks = suite.tasks("train")
    failures = [t for t in collect(suite, make_expert("counter", "overshooting"), tasks, seed=0) if not t.success]
    assert len(failures) == 4
    for failure in failures:
        task = next(task for task in tasks if task.task_id == failure.task_id)
        points = restart_points(failure.num_actions, 2)
        actions = [parse_action(turn) for turn in failure.agent_turns()]
        observations = failure.observations()
        environments = restore_points(suite, task, actions, observations, points)
        assert [env.value for env in environments] == points  # each increment added one
        tampered = ["The counter shows 9; the target is 9.", *observations[1:]]
        with pytest.raises(ReplayDivergence, match="after action 0"):
            restore_points(suite, task, actions, tampered, points)


@pytest.mark.slow
def test_collect_train_eval_and_a_run_on_a_registered_environment(counter, tmp_path, capsys):
    data = tmp_path / "expert.jsonl"
    collected = eef_json(capsys, "collect", "--env", "counter", "--expert", "overshooting", "--out", str(data))
    by_level = collected["summary"]["by_difficulty"]
    assert list(by_level) == ["easy", "hard"]  # in the suite's order of difficulty levels
    assert by_level["easy"]["win_rate"] == 1.0 and by_level["hard"]["win_rate"] == 0.0
    assert len(data.read_text().splitlines()) == len(TARGETS["train"])

    checkpoint = tmp_path / "checkpoint"
    trained = eef_json(
        capsys, "train", "--env", "counter", "--data", str(data), "--successes-only", "--epochs", "2",
        "--batch-size", "4", "--max-length", "256", "--out", str(checkpoint),
    )  # fmt: skip
    assert trained["examples"] == by_level["easy"]["episodes"] and trained["steps"] == 2
    assert (checkpoint / "config.json").is_file()

    evaluated = eef_json(
        capsys, "eval", str(checkpoint), "--env", "counter", "--max-new-tokens", "16", "--out", str(tmp_path / "eval")
    )
    assert evaluated["summary"]["overall"]["episodes"] == len(TARGETS["dev"])
    assert (tmp_path / "eval" / "results.json").is_file()

    config = tmp_path / "counter.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "counter",
                "iterations": 1,
                "env": {"name": "counter", "train_tasks": None, "dev_tasks": None, "test_tasks": None},
                "experts": ["overshooting"],
                "sft": {"epochs": 2, "batch_size": 4, "max_length": 256},
                "rollout": {"batch_size": 16, "explore": {"max_new_tokens": 16}, "evaluate": {"max_new_tokens": 16}},
                "methods": [{"name": "sft", "kind": "sft"}, {"name": "eef", "kind": "eef", "m": 2}],
            }
        )
    )
    run = tmp_path / "run"
    results = eef_json(capsys, "run", str(config), "--out", str(run))
    assert [row["method"] for row in results["table"]] == ["expert (overshooting)", "sft", "eef"]
    explored = results["iterations"]["eef"][0]["success_by_start"]
    assert {"s0", "s1", "s2"} <= set(explored)  # from the tasks' starts and from restart points of the failures
    code, out, err = eef_here(capsys, "verify", str(run))
    assert code == 0, out + err

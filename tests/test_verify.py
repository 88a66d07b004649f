"""`eef verify` on a finished run, on what a kill leaves (both hold), and on copies broken in ways a kill
cannot break a run (each fails, naming the file); `eef run --resume` refuses those."""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from eef.verify import exploration_problem
from tests.small_run import snapshot
from tests.test_cli import assert_user_error, eef

CHECKS = {
    "JSONL lines whole",
    "no duplicate ids",
    "each stage logged once",
    "exploration chunks whole",
    "done markers match their data",
    "checkpoints readable",
    "results match the data",
}


@pytest.fixture
def run(small_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished small run, to break."""
    copy = tmp_path / "run"
    shutil.copytree(small_run, copy)
    return copy


def _verify(run: Path) -> tuple[int, dict]:
    result = eef("verify", str(run), "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_finished_run_passes(run: Path):
    text = eef("verify", str(run))
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.splitlines()[-1] == f"{run}: all {len(CHECKS)} checks hold"
    code, report = _verify(run)
    assert code == 0 and report["ok"] and {check["name"] for check in report["checks"]} == CHECKS
    assert all(check["ok"] and check["files"] > 0 for check in report["checks"])


def test_what_a_kill_leaves_mid_exploration_passes(run: Path):
    iteration = run / "eef" / "iter-1"
    for name in ("rollouts.done.json", "build.json", "train.jsonl"):
        (iteration / name).unlink()
    for name in ("checkpoint", "checkpoint.trainer", "eval-dev", "eval-test"):
        shutil.rmtree(iteration / name)
    shutil.rmtree(run / "report")
    for name in ("results.json", "results.md", "report.html"):
        (run / name).unlink()
    logged = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(line for line in logged if "eef/iter-1" not in line))
    # Two whole chunks of 8, then a kill in the middle of the third chunk's append: 3 lines and a half.
    rollouts = (iteration / "rollouts.jsonl").read_text().splitlines(keepends=True)
    (iteration / "rollouts.jsonl").write_text("".join(rollouts[:19]) + rollouts[19][:100])

    code, report = _verify(run)
    assert code == 0, report


def _append_a_copy_of_a_line(run: Path) -> Path:
    path = run / "eef" / "iter-1" / "train.jsonl"
    with open(path, "a") as handle:
        handle.write(path.read_text().splitlines(keepends=True)[2])
    return path


def _append_the_rollouts_again(run: Path) -> Path:  # what two runs at once used to do
    path = run / "eef" / "iter-1" / "rollouts.jsonl"
    path.write_text(path.read_text() * 2)
    return path


def _tear_a_chunk_of_a_finished_exploration(run: Path) -> Path:
    path = run / "eef" / "iter-1" / "rollouts.jsonl"
    rollouts = path.read_text().splitlines(keepends=True)
    del rollouts[20]  # one rollout of chunk 2 (lines 17-24)
    path.write_text("".join(rollouts))
    return path


def _truncate_a_checkpoint(run: Path) -> Path:
    path = run / "eef" / "iter-1" / "checkpoint" / "model.safetensors"
    os.truncate(path, path.stat().st_size - 1000)
    return path


def _edit_the_results_table(run: Path) -> Path:
    path = run / "results.json"
    results = json.loads(path.read_text())
    results["table"][1]["test_win_rate"] += 0.25
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def _edit_results_md(run: Path) -> Path:
    path = run / "results.md"
    path.write_text(path.read_text().replace("| sft | 0 |", "| sft | 1 |"))
    return path


@pytest.mark.parametrize(
    ("damage", "check"),
    [
        (_append_a_copy_of_a_line, "no duplicate ids"),
        (_append_the_rollouts_again, "no duplicate ids"),
        (_tear_a_chunk_of_a_finished_exploration, "exploration chunks whole"),
        (_truncate_a_checkpoint, "checkpoints readable"),
        (_edit_the_results_table, "results match the data"),
        (_edit_results_md, "results match the data"),
    ],
)
def test_a_broken_run_fails_naming_the_file(run: Path, damage: Callable[[Path], Path], check: str):
    path = damage(run)
    code, report = _verify(run)
    failed = next(c for c in report["checks"] if c["name"] == check)
    assert code == 1 and not report["ok"] and not failed["ok"], report
    assert str(path) in {problem["file"] for problem in failed["problems"]}


def test_failures_are_lines_that_name_the_file(run: Path):
    path = _tear_a_chunk_of_a_finished_exploration(run)
    text = eef("verify", str(run))
    assert text.returncode == 1
    assert "FAIL  exploration chunks whole" in text.stdout
    assert f"      {path}: chunk 2 has 7 of 8 rollouts, in a finished exploration" in text.stdout.splitlines()
    assert text.stdout.splitlines()[-1] == f"{run}: 2 of {len(CHECKS)} checks fail"  # the done marker's count too


def test_resume_refuses_a_broken_run_with_one_line_and_writes_nothing(run: Path):
    path = _append_the_rollouts_again(run)
    before = snapshot(run)
    assert_user_error(eef("run", "--resume", str(run)), f"{run} cannot be resumed: {path}: ", f"eef verify {run}")
    assert snapshot(run) == before


def test_a_hand_edited_table_does_not_stop_a_resume(run: Path):
    # The results are not kept but written anew at the end of a run: resuming is how to repair them.
    _edit_the_results_table(run)
    assert eef("run", "--resume", str(run)).returncode == 0
    assert _verify(run)[0] == 0


def test_user_errors(tmp_path: Path):
    assert_user_error(eef("verify", str(tmp_path / "absent")), "no such directory")
    assert_user_error(eef("verify", str(tmp_path)), "not a run directory (no config.yaml)")


@pytest.mark.parametrize(
    ("chunks", "done", "problem"),
    [
        ([0] * 8 + [1] * 8 + [2] * 3, None, None),  # a kill tore the last chunk: resume reruns it
        ([0] * 8 + [1] * 8 + [2] * 3, 19, None),  # the last chunk of a finished exploration is short
        ([0] * 8 + [1] * 7 + [2] * 8, None, "chunk 1 has 7 rollouts, a chunk has 8"),
        ([0] * 8 + [1] * 7 + [2] * 3, 19, "chunk 1 has 7 of 8 rollouts, in a finished exploration"),
        ([0] * 8 + [1] * 8, 19, "chunk 2 has 0 of 3 rollouts, in a finished exploration"),
        ([0] * 8 + [2] * 8, None, "chunk 1 is missing but chunk 2 is there"),
        ([0] * 8 + [1] * 8 + [0] * 8, None, "chunks are out of order"),
        ([0] * 9, None, "chunk 0 has 9 rollouts, a chunk has 8"),
    ],
)
def test_exploration_chunks(chunks: list[int], done: int | None, problem: str | None):
    assert exploration_problem(chunks, 8, done) == problem

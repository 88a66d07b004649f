"""A run killed (SIGKILL) in the middle of an iteration resumes to exactly the data of an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.small_run import quiet_env, small_run_command


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _data_files(run: Path) -> list[Path]:
    return sorted(p.relative_to(run) for p in run.rglob("*.jsonl") if p.name != "metrics.jsonl")


@pytest.mark.slow
def test_sigkill_mid_iteration_then_resume_matches_uninterrupted_run(tmp_path: Path, small_run: Path):
    whole = small_run

    killed = tmp_path / "killed"
    rollouts = killed / "eef" / "iter-1" / "rollouts.jsonl"
    process = subprocess.Popen(
        small_run_command(killed), env=quiet_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    while not (rollouts.is_file() and rollouts.read_text().count("\n") >= 8):
        assert process.poll() is None, "the run ended before it could be killed mid-iteration"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "eef" / "iter-1" / "rollouts.done.json").exists(), "killed too late: exploration was done"

    resumed = subprocess.run(
        [sys.executable, "-m", "eef", "run", "--resume", str(killed)],
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr

    assert _data_files(killed) == _data_files(whole)
    for relative in _data_files(whole):
        expected, got = _lines(whole / relative), _lines(killed / relative)
        ids = [record["id"] for record in got]
        assert len(ids) == len(set(ids)), f"duplicates in {relative}"
        assert got == expected, f"{relative} differs from the uninterrupted run"
    metric_keys = [record["key"] for record in _lines(killed / "metrics.jsonl")]
    assert len(metric_keys) == len(set(metric_keys))
    assert set(metric_keys) == {record["key"] for record in _lines(whole / "metrics.jsonl")}

    def table(run: Path) -> list[dict]:  # without wall times, which differ between any two runs
        rows = json.loads((run / "results.json").read_text())["table"]
        return [{key: value for key, value in row.items() if key != "cost"} for row in rows]

    assert table(killed) == table(whole)

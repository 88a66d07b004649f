"""A run killed (SIGKILL) in the middle of an iteration (EEF's, or ETO's) resumes to exactly the data of an
uninterrupted run."""

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.small_run import assert_same_data, quiet_env, small_run_command
from tests.test_cli import eef


@pytest.mark.slow
@pytest.mark.parametrize("method", ["eef", "eto"])
def test_sigkill_mid_iteration_then_resume_matches_uninterrupted_run(tmp_path: Path, small_run: Path, method: str):
    killed = tmp_path / "killed"
    rollouts = killed / method / "iter-1" / "rollouts.jsonl"
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
    assert not (killed / method / "iter-1" / "rollouts.done.json").exists(), "killed too late: exploration was done"
    # The killed run held the directory's lock; the OS dropped it, only the note of its holder is left.
    assert json.loads((killed / ".eef.lock.json").read_text())["pid"] == process.pid

    resumed = eef("run", "--resume", str(killed), timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_data(killed, small_run)

"""One writer per run directory: a second eef on a directory in use stops at once, with one line that
names the holder, and writes nothing; a lock whose holder was killed blocks nothing."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.small_run import assert_same_data, quiet_env, small_run_command, snapshot
from tests.test_cli import assert_user_error, eef

# A real process holding a run directory's lock, as `eef run` does, until it is stopped.
HOLD = """
import sys, time
from pathlib import Path
from eef.lock import run_lock
with run_lock(Path(sys.argv[1]), "a test holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold(directory: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)


def test_commands_on_a_directory_in_use_stop_with_one_line_and_write_nothing(small_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    holder = _hold(run)
    try:
        before = snapshot(run)
        in_use = f"{run} is in use by `a test holder` (pid {holder.pid} on "
        for command in (["run", "--resume", str(run)], ["report", str(run)], ["verify", str(run)]):
            assert_user_error(eef(*command), in_use, f"wait for it to end, or stop it (kill {holder.pid})")
        # `eef run` with the run's own config finds the directory and would continue it.
        assert_user_error(_run(small_run_command(run)), in_use)
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_whose_holder_was_killed_blocks_nothing(small_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    holder = _hold(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((run / ".eef.lock.json").read_text())["pid"] == holder.pid  # stale: nobody holds the lock

    resumed = eef("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert not (run / ".eef.lock.json").exists()  # a holder that ends removes its note


@pytest.mark.slow
def test_a_second_run_on_a_running_directory_stops_and_the_first_finishes_alone(small_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    log = tmp_path / "first.log"
    with open(log, "w") as stderr:
        first = subprocess.Popen(small_run_command(run), env=quiet_env(), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 300
        while not (run / "config.yaml").is_file():  # written under the lock: the first run holds it
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        in_use = f"{run} is in use by `eef run` (pid {first.pid} on "
        assert_user_error(_run(small_run_command(run)), in_use)
        assert_user_error(_run([sys.executable, "-m", "eef", "run", "--resume", str(run)]), in_use)
        assert first.wait(timeout=600) == 0, log.read_text()
    finally:
        first.kill()
        first.wait()

    # Nothing doubled: the data of a run that ran alone.
    assert_same_data(run, small_run)
    resumed = eef("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from filelock import FileLock

from tests.small_run import quiet_env, small_run_command

# The tests run on pytest-xdist workers (pyproject.toml's addopts). Each worker, and every process its tests start,
# takes its share of the cores: with all of them each, two workers' torch threads would wait on each other (set
# before torch loads). Tests that see what another worker starts share a worker (`xdist_group`): "ray", since
# `ray stop` stops every Ray cluster of the machine, and "sciworld", whose checks count ScienceWorld's JVMs
# machine-wide.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // int(workers))))


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished small run, shared by the tests that read a run directory (not modified by them), and by the
    workers: the first that needs it makes it (a minute of a core), the others wait for it under a file lock."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the workers' base folders lie side by side in the session's
    out = shared / "small-run" / "run"
    with FileLock(shared / "small-run.lock"):
        if not (out / "results.json").is_file():  # written last by a run that finished
            shutil.rmtree(out.parent, ignore_errors=True)  # what a failed attempt left
            subprocess.run(small_run_command(out), check=True, env=quiet_env(), capture_output=True, timeout=600)
    return out

import subprocess
from pathlib import Path

import pytest

from tests.small_run import quiet_env, small_run_command


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished small run, shared by the tests that read a run directory (not modified by them)."""
    out = tmp_path_factory.mktemp("small-run") / "run"
    subprocess.run(small_run_command(out), check=True, env=quiet_env(), capture_output=True, timeout=600)
    return out

"""Rollouts on Ray workers (``cluster.workers``, docs/scale-out.md), on a real local Ray cluster: a small run with
two workers writes exactly the data of the same run in one process, also when a worker dies holding a chunk."""

import subprocess
from pathlib import Path

import pytest

from eef.cluster import EXIT_ONCE_VARIABLE
from tests.small_run import assert_same_data, quiet_env, small_run_command

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray cluster for this module's runs; its address (HOST:PORT of its head)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def run_on_workers(out: Path, address: str, env: dict[str, str]) -> None:
    command = small_run_command(out, "--set", f"cluster.address={address}", "--set", "cluster.workers=2")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_two_workers_write_the_data_of_the_run_in_one_process(tmp_path: Path, small_run: Path, cluster: str):
    run_on_workers(tmp_path / "run", cluster, quiet_env())
    assert_same_data(tmp_path / "run", small_run)


@pytest.mark.slow
def test_a_worker_that_dies_holding_a_chunk_is_replaced_and_its_chunk_rerun(
    tmp_path: Path, small_run: Path, cluster: str
):
    exited = tmp_path / "a-worker-exited"  # the first worker to take a chunk creates it and exits
    run_on_workers(tmp_path / "run", cluster, {**quiet_env(), EXIT_ONCE_VARIABLE: str(exited)})
    assert exited.is_file()
    assert_same_data(tmp_path / "run", small_run)

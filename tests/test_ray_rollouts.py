"""Rollouts on Ray workers (``cluster.workers``, docs/scale-out.md), on a real local Ray cluster: a small run with
two workers writes exactly the data of the same run in one process, also when a worker dies holding a chunk."""

import subprocess
import sys
from pathlib import Path

import pytest

from eef.cluster import EXIT_ONCE_VARIABLE
from tests.small_run import assert_same_data, quiet_env, small_run_command

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster at a time: tests/conftest.py


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray cluster for this module's runs; its address (HOST:PORT of its head)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # a new one, always
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def run_on_workers(out: Path, address: str, env: dict[str, str], *settings: str) -> subprocess.CompletedProcess:
    extra = [
        arg for setting in (f"cluster.address={address}", "cluster.workers=2", *settings) for arg in ("--set", setting)
    ]
    return subprocess.run(small_run_command(out, *extra), env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_a_worker_that_dies_holding_a_chunk_is_replaced_and_its_chunk_rerun(
    tmp_path: Path, small_run: Path, cluster: str
):
    # Two workers write the data of the run in one process, also with a worker replaced (where none dies: a run
    # on a `ray start` cluster, tests/test_ray_head.py).
    exited = tmp_path / "a-worker-exited"  # the first worker to take a chunk creates it and exits
    result = run_on_workers(tmp_path / "run", cluster, {**quiet_env(), EXIT_ONCE_VARIABLE: str(exited)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert exited.is_file()
    assert_same_data(tmp_path / "run", small_run)


@pytest.mark.slow
def test_a_worker_that_dies_past_its_restarts_stops_the_run_and_a_resume_finishes_it(
    tmp_path: Path, small_run: Path, cluster: str
):
    exited, run = tmp_path / "a-worker-exited", tmp_path / "run"
    env = {**quiet_env(), EXIT_ONCE_VARIABLE: str(exited)}
    stopped = run_on_workers(run, cluster, env, "cluster.worker_restarts=0")
    assert stopped.returncode == 1, stopped.stderr[-3000:]
    [line] = stopped.stderr.strip().splitlines()
    assert line.startswith("eef: error: a rollout worker died more often than cluster.worker_restarts allows"), line
    assert line.endswith(f"`eef run --resume {run}` continues"), line
    assert exited.is_file()
    resume = [sys.executable, "-m", "eef", "run", "--resume", str(run)]  # its config: 2 workers on the cluster
    resumed = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_data(run, small_run)


def test_workers_that_do_not_fit_the_cluster_are_a_user_error(cluster: str):
    code = (
        "from eef.cluster import RolloutPool\nfrom eef.config import ClusterConfig, EnvConfig, RolloutConfig\n"
        f"RolloutPool(ClusterConfig(address={cluster!r}, workers=3), EnvConfig(), RolloutConfig(), 'auto', 'run')"
    )
    result = subprocess.run([sys.executable, "-c", code], env=quiet_env(), capture_output=True, text=True, timeout=120)
    assert "UserError: cluster.workers=3 with cluster.cpus_per_worker=1.0 needs 3 CPUs, the Ray cluster has 2" in (
        result.stderr
    )


def test_a_worker_that_cannot_start_is_a_user_error_that_says_why(cluster: str):
    # The run's process checks its environment before any work; a worker checks it again on its node.
    code = (
        "from pathlib import Path\nfrom eef.cluster import RolloutPool\n"
        "from eef.config import ClusterConfig, EnvConfig, RolloutConfig, SamplingConfig\n"
        f"settings = ClusterConfig(address={cluster!r}, workers=1, worker_restarts=0)\n"
        "pool = RolloutPool(settings, EnvConfig(name='no-such-env'), RolloutConfig(), 'auto', Path('run'))\n"
        "next(pool.roll_out(Path('checkpoint'), SamplingConfig(), 'policy:x', {0: []}, {0: 0}))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=quiet_env(), capture_output=True, text=True, timeout=120)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("eef.errors.UserError: a rollout worker could not start: eef.errors.UserError: "), last
    assert "no-such-env" in last

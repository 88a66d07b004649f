"""A Ray cluster that `ray start --head` started as its own process, as on a real cluster's head node: a run
given its HOST:PORT completes with the data of the run in one process and leaves no worker behind, and
`ray stop` then leaves no process of that cluster. An address where nothing answers, or a cluster that asks for
a token the run does not send, is one line before any work (docs/scale-out.md)."""

import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import command_lines, within
from tests.small_run import assert_same_data, quiet_env, small_run_command

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # `ray stop` stops every Ray cluster of this machine: tests/conftest.py
RAY = str(Path(sys.executable).with_name("ray"))
HEAD_OPTIONS = ("--include-dashboard=false", "--disable-usage-stats", "--temp-dir")


@dataclass(frozen=True)
class Head:
    address: str  # 127.0.0.1:PORT
    env: dict[str, str]  # token authentication on, with this head's token
    session: int  # the session of every process of this cluster (`ray start` ran as its leader)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    token = tmp_path_factory.mktemp("ray-token") / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**quiet_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    # Short: Ray's socket paths live under it, and a Unix socket path has at most 107 characters.
    temp = tempfile.mkdtemp(prefix="eef-ray-", dir="/tmp")
    port = free_port()
    start = subprocess.Popen(
        [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", *HEAD_OPTIONS, temp],
        env=env,
        start_new_session=True,  # the daemons it leaves stay in this session: found again by it
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = start.communicate(timeout=120)
    assert start.returncode == 0, output[-3000:]
    try:
        yield Head(address=f"127.0.0.1:{port}", env=env, session=start.pid)
    finally:
        if command_lines(start.pid):
            subprocess.run([RAY, "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def run_on(head_address: str, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = small_run_command(out, "--set", f"cluster.address={head_address}", "--set", "cluster.workers=2")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_a_cluster_that_asks_for_a_token_the_run_does_not_send_is_one_line_that_says_how(tmp_path: Path, head: Head):
    env = {key: value for key, value in head.env.items() if key != "RAY_AUTH_MODE"}
    result = run_on(head.address, tmp_path / "run", env)
    assert result.returncode == 2, result.stderr[-3000:]
    # Ray's own client logs each refused try on stderr before it gives up; our line is the last.
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"eef: error: cluster.address {head.address}: the Ray cluster there did not accept"), last
    assert "set RAY_AUTH_MODE=token" in last
    assert not (tmp_path / "run" / "experts").exists()  # refused before any work


def test_an_address_where_nothing_answers_is_one_line_before_any_work(tmp_path: Path):
    result = run_on(f"127.0.0.1:{free_port()}", tmp_path / "run", quiet_env())
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = result.stderr.strip().splitlines()
    assert "nothing answers there (Connection refused); start the head node (`ray start --head --port=" in line, line
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.slow
def test_a_run_on_a_ray_start_cluster_completes_and_ray_stop_leaves_no_ray_process(
    tmp_path: Path, small_run: Path, head: Head
):
    result = run_on(head.address, tmp_path / "run", head.env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_data(tmp_path / "run", small_run)
    # The run killed its workers when it ended; the cluster's own processes stay until `ray stop`.
    assert within(30, lambda: not [p for p in command_lines(head.session) if "RolloutWorker" in p])
    assert any("raylet" in p for p in command_lines(head.session))
    stop = subprocess.run([RAY, "stop"], env=head.env, capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stderr[-3000:]
    assert within(30, lambda: not command_lines(head.session)), command_lines(head.session)

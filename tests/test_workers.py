"""The suite's own set-up (tests/conftest.py, pyproject.toml's addopts): on pytest-xdist workers, the tests of one
`xdist_group` share a worker, and each worker's torch takes its share of the cores."""

import os

import pytest
import torch

on_a_worker = pytest.mark.skipif("PYTEST_XDIST_WORKER" not in os.environ, reason="run in one process (-n0)")


@on_a_worker
@pytest.mark.xdist_group("ray")
def test_a_grouped_test_is_scheduled_with_its_group(request: pytest.FixtureRequest):
    # pytest-xdist marks a grouped test's id; where it does not, `--dist loadgroup` spreads the group over workers.
    assert request.node.nodeid.endswith("@ray"), "xdist_group is ignored: see the pin of pytest in pyproject.toml"


@on_a_worker
def test_each_worker_takes_its_share_of_the_cores():
    # tests/conftest.py sets it (where it is not set) before torch loads; torch loaded earlier takes every core.
    assert torch.get_num_threads() == int(os.environ["OMP_NUM_THREADS"])

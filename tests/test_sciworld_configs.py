"""The ScienceWorld run configs load, name registered experts, and give the suite options it accepts."""

from pathlib import Path

import pytest

from eef.config import load_config
from eef.envs.registry import get_suite
from eef.envs.sciworld.java import unavailable_reason
from eef.experts.registry import make_expert

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
@pytest.mark.xdist_group("sciworld")  # beside tests/envs/test_sciworld.py's JVM checks: tests/conftest.py
@pytest.mark.parametrize("name", ["sciworld-tiny", "sciworld-smollm2"])
def test_sciworld_config_is_runnable(name):
    config = load_config(CONFIGS / f"{name}.yaml", [])
    suite = get_suite(config.env.name, **config.env.options)
    try:
        assert config.rollout.batch_size <= suite.max_concurrent_envs
        for expert in config.experts:
            make_expert("sciworld", expert)
        assert len(suite.tasks("train")[: config.env.train_tasks]) >= 24
    finally:
        suite.close()

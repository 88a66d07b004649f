"""A small `eef run` (a minute on 2 cores) for the tests that need a real run directory."""

import os
import sys
from pathlib import Path

SMALL = [
    "env.train_tasks=24",
    "env.dev_tasks=4",
    "env.test_tasks=4",
    "iterations=1",
    "sft.epochs=1",
    "iteration_sft.epochs=1",
    "rollout.batch_size=8",
    "rollout.explore.max_new_tokens=24",
    "rollout.evaluate.max_new_tokens=24",
    "experts=[scripted]",
    "methods=[{name: eef, kind: eef, m: 2}]",
]


def small_run_command(out: Path, *extra: str) -> list[str]:
    overrides = [arg for item in SMALL for arg in ("--set", item)]
    return [sys.executable, "-m", "eef", "run", "--out", str(out), *overrides, *extra]


def quiet_env() -> dict[str, str]:
    return {**os.environ, "EEF_QUIET": "1"}
